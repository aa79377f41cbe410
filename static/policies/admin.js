"use strict";
// Beside each size in bytes on the policy form, the same size as people read it ("10 MiB
// (10485760 bytes)"), kept up to date while the admin types. Same units as policies.units.
(function () {
  const UNITS = ["KiB", "MiB", "GiB", "TiB"];

  function formatBytes(size) {
    if (size < 1024) {
      return size === 1 ? "1 byte" : size + " bytes";
    }
    let value = size;
    for (const unit of UNITS) {
      value /= 1024;
      if (value < 1024 || unit === UNITS[UNITS.length - 1]) {
        return value.toFixed(1).replace(/\.0$/, "") + " " + unit;
      }
    }
    return "";
  }

  function describe(text) {
    const trimmed = text.trim();
    if (!/^\d+$/.test(trimmed)) {
      return "";
    }
    const size = Number(trimmed);
    return formatBytes(size) + " (" + size + " bytes)";
  }

  function follow(output) {
    const input = document.getElementById(output.getAttribute("for"));
    if (input) {
      input.addEventListener("input", () => {
        output.textContent = describe(input.value);
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("output.policies-size").forEach(follow);
  });
})();
