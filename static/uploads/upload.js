/* The upload form, enhanced (templates/uploads/upload.html): a drop zone, the chosen files
   listed and checked against the policy's limits before anything is sent, then each file
   uploaded to the API with its own request, its progress bar and the server's answer next to
   it. Without this script the form posts as it is, and the server says the same things. */
"use strict";

(() => {
  const form = document.querySelector("form[data-upload-endpoint]");
  if (!form || typeof DataTransfer !== "function") return;

  const input = form.querySelector("input[type=file]");
  const zone = form.querySelector("[data-drop-zone]");
  const list = form.querySelector("[data-file-list]");
  const message = form.querySelector("[data-form-message]");
  const summary = form.querySelector("[data-summary]");
  const submit = form.querySelector("button[type=submit]");
  const limits = {
    bytes: Number(form.dataset.maxFileBytes),
    size: form.dataset.maxFileSize,
    files: Number(form.dataset.maxFiles),
    extensions: form.dataset.extensions.split(" ").filter(Boolean),
    checked: form.dataset.prechecks === "on", // a rehearsing policy refuses nothing itself
  };
  const single = limits.files === 1;
  const SENDABLE = new Set(["ready", "failed"]);
  const RUNNING = new Set(["uploading", "checking"]);
  let items = []; // {file, key, state, row, status, progress, remove}
  let busy = false;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  // Sizes and refusals in the server's words (policies/units.py, uploads/receive.py and
  // uploads/inspect.py), so a user reads the same sentence with or without this script.
  function formatBytes(size) {
    if (size < 1024) return size === 1 ? "1 byte" : `${size} bytes`;
    let value = size;
    for (const unit of ["KiB", "MiB", "GiB", "TiB"]) {
      value /= 1024;
      if (value < 1024 || unit === "TiB") return `${value.toFixed(1).replace(/\.0$/, "")} ${unit}`;
    }
  }

  // Just over the limit reads as the limit itself ("1 MiB"): then the exact count says why.
  function sizeOf(file) {
    const size = formatBytes(file.size);
    const unclear = file.size > limits.bytes && size === limits.size;
    return unclear ? `${size} (${file.size.toLocaleString("en")} bytes)` : size;
  }

  function extensionOf(name) {
    const trimmed = name.replace(/^[.\s]+|[.\s]+$/g, "");
    const dot = trimmed.lastIndexOf(".");
    return dot > 0 ? trimmed.slice(dot + 1).toLowerCase() : "";
  }

  function precheck(file) {
    if (!limits.checked) return "";
    if (file.size === 0) return "The file is empty.";
    if (file.size > limits.bytes) {
      return `The file is larger than ${limits.size}, the most this upload accepts.`;
    }
    const extension = extensionOf(file.name);
    if (limits.extensions.includes(extension)) return "";
    const which = extension
      ? `Files ending in .${extension} are`
      : "Files without an extension are";
    const accepted =
      limits.extensions.map((e) => `.${e}`).join(", ") || "nothing (the policy allows no files)";
    return `${which} not accepted here. Accepted: ${accepted}.`;
  }

  function countProblem() {
    const extra = items.filter((item) => SENDABLE.has(item.state)).length - limits.files;
    if (!limits.checked || extra <= 0) return "";
    const files = single ? "1 file" : `${limits.files} files`;
    return `This upload accepts ${files} at a time: remove ${extra} before uploading.`;
  }

  function showMessage(text) {
    message.replaceChildren(...(text ? [element("p", "error", text)] : []));
  }

  function setState(item, state, text) {
    item.state = state;
    item.row.dataset.state = state;
    item.status.textContent = text;
    item.progress.hidden = !(RUNNING.has(state) || state === "done");
    item.remove.hidden = RUNNING.has(state) || state === "done";
  }

  function newItem(file) {
    const row = element("li", "file");
    const name = element("span", "file-name", file.name);
    const remove = element("button", "file-remove", "Remove");
    remove.type = "button";
    remove.append(element("span", "visually-hidden", ` ${file.name}`));
    const progress = element("progress", "file-progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", `Upload of ${file.name}`);
    const status = element("p", "file-status");
    const head = element("div", "file-head");
    head.append(name, element("span", "file-size", sizeOf(file)), remove);
    row.append(head, progress, status);
    const item = { file, key: newKey(), row, status, progress, remove };
    remove.addEventListener("click", () => removeItem(item));
    const problem = precheck(file);
    setState(item, problem ? "invalid" : "ready", problem || "Ready to upload.");
    return item;
  }

  // One key per file, kept for its retries: the server then stores it at most once.
  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function sameFile(a, b) {
    return a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
  }

  function addFiles(fileList) {
    const files = Array.from(fileList);
    if (files.length === 0) return;
    if (busy) {
      showMessage("Wait for the files being uploaded to finish, then add more.");
      return;
    }
    // A new choice starts a new round: results of the last one go, and a one-file form swaps.
    const kept = single ? [] : items.filter((item) => !["done", "refused"].includes(item.state));
    items.filter((item) => !kept.includes(item)).forEach((item) => item.row.remove());
    items = kept;
    for (const file of files) {
      if (items.some((item) => sameFile(item.file, file))) continue;
      const item = newItem(file);
      items.push(item);
      list.append(item.row);
    }
    summary.replaceChildren();
    refresh();
  }

  function removeItem(item) {
    const index = items.indexOf(item);
    items.splice(index, 1);
    item.row.remove();
    refresh();
    // Keep keyboard focus in the list rather than losing it with the removed button.
    const next = items[index] || items[index - 1];
    (next && !next.remove.hidden ? next.remove : zone).focus();
  }

  // The file input shows what the list holds, as a plain form post would send it.
  function refresh() {
    const chosen = new DataTransfer();
    items.forEach((item) => chosen.items.add(item.file));
    input.files = chosen.files;
    showMessage(countProblem());
  }

  function upload(item) {
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", form.dataset.uploadEndpoint);
      request.responseType = "json";
      request.setRequestHeader("Accept", "application/json");
      request.setRequestHeader("X-CSRFToken", form.elements.csrfmiddlewaretoken.value);
      request.setRequestHeader("Idempotency-Key", item.key);
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) item.progress.value = (100 * event.loaded) / event.total;
      });
      request.upload.addEventListener("load", () => {
        item.progress.value = 100;
        setState(item, "checking", "Sent; the server is checking it…");
      });
      request.addEventListener("loadend", () => {
        answered(item, request);
        resolve();
      });
      const body = new FormData();
      body.append(input.name, item.file);
      item.progress.value = 0;
      setState(item, "uploading", "Uploading…");
      request.send(body);
    });
  }

  function answered(item, request) {
    const { status, response } = request;
    if (status >= 200 && status < 300) {
      item.progress.value = 100;
      setState(item, "done", "Uploaded.");
      return;
    }
    // Worth trying again with the same key: no answer, a conflict, throttling, server trouble.
    const retry = status === 0 || status === 409 || status === 429 || status >= 500;
    const detail = typeof response?.detail === "string" ? response.detail : "";
    const again = "Press Upload to try again.";
    const fallback = status === 0
      ? `The connection failed before the upload finished. ${again}`
      : `The server answered ${status} without saying why. ${again}`;
    setState(item, retry ? "failed" : "refused", detail || fallback);
  }

  function setBusy(on) {
    busy = on;
    form.classList.toggle("is-busy", on);
    form.setAttribute("aria-busy", String(on));
    input.disabled = on;
    zone.setAttribute("aria-disabled", String(on));
    submit.setAttribute("aria-disabled", String(on));
  }

  function summaryText(sent, uploaded) {
    if (uploaded === sent.length) {
      return uploaded === 1 ? `Uploaded ${sent[0].file.name}.` : `Uploaded ${uploaded} files.`;
    }
    if (uploaded === 0) {
      const where = sent.length === 1 ? "the file" : "each file";
      return `Nothing was uploaded; the reason is next to ${where}.`;
    }
    const others = sent.length - uploaded === 1 ? "the other" : "the others";
    return `Uploaded ${uploaded} of ${sent.length} files; see why next to ${others}.`;
  }

  function showSummary(sent) {
    const uploaded = sent.filter((item) => item.state === "done").length;
    const link = element("a", "", "Go to My uploads");
    link.href = form.dataset.mineUrl;
    summary.dataset.outcome = uploaded === sent.length ? "done" : "partial";
    summary.replaceChildren(element("p", "", summaryText(sent, uploaded)), link);
  }

  async function uploadAll(event) {
    event.preventDefault();
    if (busy) return;
    const waiting = items.filter((item) => SENDABLE.has(item.state));
    let problem = countProblem();
    if (items.length === 0) problem = `Choose ${single ? "a file" : "files"} to upload first.`;
    else if (!problem && waiting.length === 0) {
      problem = items.length === 1
        ? "This file cannot be uploaded: choose another."
        : "None of these files can be uploaded: remove them or choose others.";
    }
    if (problem) {
      showMessage(problem);
      return;
    }
    setBusy(true);
    showMessage("");
    summary.replaceChildren();
    for (const item of waiting) {
      if (items.includes(item)) await upload(item); // unless removed while it waited
    }
    setBusy(false);
    showSummary(waiting.filter((item) => items.includes(item)));
  }

  function openChooser() {
    if (!busy) input.click();
  }

  function dragOver(event) {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone.classList.add("is-over");
  }

  zone.hidden = false;
  form.noValidate = true; // the script checks the list itself (dropped files included)
  input.addEventListener("change", () => addFiles(input.files));
  form.addEventListener("submit", uploadAll);
  zone.addEventListener("click", openChooser);
  zone.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault();
    openChooser();
  });
  zone.addEventListener("dragenter", dragOver);
  zone.addEventListener("dragover", dragOver);
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("is-over");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("is-over");
    addFiles(event.dataTransfer.files);
  });
  // A file dropped beside the zone would make the browser leave the page to show it.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (zone.contains(event.target) || event.target === input) return; // the input takes drops
      event.preventDefault();
      if (event.dataTransfer) event.dataTransfer.dropEffect = "none";
    });
  }
  window.addEventListener("beforeunload", (event) => {
    if (busy) event.preventDefault();
  });
})();
