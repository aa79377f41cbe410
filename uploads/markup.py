"""The markup step of the upload pipeline: SVG drawings and XML documents that a browser would
act on are refused.

Both types are parsed by defusedxml's streaming parser with DTDs, entities and external
references forbidden, so a `<!DOCTYPE>` of any kind (billion laughs, quadratic blowup, XXE,
external parameter entities, or a harmless-looking DTD line) is refused before it can expand or
load anything, and a file that is not well-formed XML is reported as not being the type its
name and sniffed type claim (`type_mismatch`). The walk is bounded: at most MAX_DEPTH open
elements and MAX_ELEMENTS elements, and each finished element is cleared and let go, so memory
stays flat whatever the size of the file. Everywhere, XInclude and `<?xml-stylesheet?>` (an
XSLT transform or a stylesheet the browser fetches and applies) are refused.

An SVG drawing is checked against an allowlist rather than a list of known attacks, because
browsers keep adding ways for SVG to run script or load things and a denylist misses the next
one. It must have `<svg>` in the SVG namespace at its root and may hold only:

- SVG elements of the static drawing vocabulary (SVG_ELEMENTS: shapes, text, paint servers,
  filters, `<image>`, `<style>`, `<a>`) and the declarative animations; no `<script>`,
  `<foreignObject>`, `<handler>`, SVG fonts or anything else;
- elements of the metadata vocabularies editors write (RDF, Dublin Core, Creative Commons,
  Inkscape, Sodipodi, Sketch, Illustrator), which browsers do not render; any other namespace
  (XHTML's `<iframe>` and `<script>`, MathML, no namespace at all) is refused;
- attributes with no event handler (`on*`, XML Events), no `xml:base`, no `javascript:` or
  `vbscript:` address however spelt (whitespace, control characters, character references,
  CSS escapes, mixed case), and no CSS that loads or runs something (`url()` to anything but a
  `#id` of the same file, `@import`, `expression()`, `image-set()`, `-moz-binding`, `behavior`);
  the same CSS rules apply to the text of `<style>`;
- references (`href`, `xlink:href`, `src`) to a `#id` of the same file only, or from `<image>`
  and `<feImage>` to an embedded PNG, JPEG, GIF or WebP image (`data:image/...`); so `<a>` links
  only inside the drawing and `<use>` never pulls in another file;
- animations that do not change a reference, `xml:base` or an event handler.

An XML document is data, so its vocabulary is free, except for the ones a browser acts on when
it opens the file: XHTML, SVG, MathML, XSLT, XML Events, XUL and XBL elements are refused, and so
is an `xlink:href` with a script address.

Files are served as attachments under a download CSP (uploads.serving); these checks keep the
stored file harmless even where that is bypassed (a file opened from disk, a proxy that drops a
header). The pipeline may run `inspect_markup` in a sandboxed child (uploads.sandbox).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import IO, NoReturn
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from policies.filetypes import label_of
from project.errors import UploadRejected

SVG_TYPE = "image/svg+xml"
XML_TYPE = "text/xml"
MARKUP_TYPES = frozenset({SVG_TYPE, XML_TYPE})

MAX_DEPTH = 256
MAX_ELEMENTS = 200_000

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
XHTML_NS = "http://www.w3.org/1999/xhtml"
MATHML_NS = "http://www.w3.org/1998/Math/MathML"
XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
XML_EVENTS_NS = "http://www.w3.org/2001/xml-events"

SVG_ELEMENTS = frozenset(
    {
        # structure
        "svg", "g", "defs", "symbol", "use", "switch", "a", "view", "image", "style",
        "title", "desc", "metadata",
        # shapes and text
        "path", "rect", "circle", "ellipse", "line", "polyline", "polygon",
        "text", "tspan", "textPath",
        # paint servers, clipping, masking, markers (mesh and hatch: SVG 2 drafts, Inkscape)
        "linearGradient", "radialGradient", "stop", "pattern", "clipPath", "mask", "marker",
        "meshgradient", "meshrow", "meshpatch", "hatch", "hatchpath",
        # filters
        "filter", "feBlend", "feColorMatrix", "feComponentTransfer", "feComposite",
        "feConvolveMatrix", "feDiffuseLighting", "feDisplacementMap", "feDistantLight",
        "feDropShadow", "feFlood", "feFuncA", "feFuncB", "feFuncG", "feFuncR",
        "feGaussianBlur", "feImage", "feMerge", "feMergeNode", "feMorphology", "feOffset",
        "fePointLight", "feSpecularLighting", "feSpotLight", "feTile", "feTurbulence",
        # declarative animation (checked by _check_animation)
        "animate", "set", "animateTransform", "animateMotion", "mpath",
    }
)  # fmt: skip
ANIMATIONS = frozenset({"animate", "set", "animateTransform", "animateMotion"})
# The elements that may embed a raster image as a data: address.
IMAGE_ELEMENTS = frozenset({"image", "feImage"})

# Editors' metadata vocabularies: browsers do not render their elements.
INERT_NAMESPACES = frozenset(
    {
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        "http://purl.org/dc/elements/1.1/",
        "http://purl.org/dc/terms/",
        "http://creativecommons.org/ns#",
        "http://web.resource.org/cc/",
        "http://www.inkscape.org/namespaces/inkscape",
        "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd",
        "http://www.bohemiancoding.com/sketch/ns",
        "http://ns.adobe.com/AdobeIllustrator/10.0/",
    }
)

# What a browser does something with when it opens an XML document: refused in text/xml.
ACTIVE_VOCABULARIES = {
    XHTML_NS: "HTML",
    SVG_NS: "SVG",
    MATHML_NS: "MathML",
    "http://www.w3.org/1999/XSL/Transform": "an XSLT stylesheet",
    XML_EVENTS_NS: "XML Events",
    "http://www.mozilla.org/keymaster/gatekeeper/there.is.only.xul": "XUL",
    "http://www.mozilla.org/xbl": "XBL",
}

_SCRIPT_SCHEMES = ("javascript:", "vbscript:")
_CSS_HAZARDS = {
    "@import": "@import",
    "expression(": "expression()",
    "image-set(": "image-set()",
    "-moz-binding": "-moz-binding",
    "behavior:": "behavior",
}
# Whitespace, control and invisible formatting characters: a URL parser drops some of them
# inside a scheme ("java\tscript:"), so they are dropped before any comparison.
_INVISIBLE = re.compile(
    r"[\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]+"
)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\r\n\f]?|(\r\n|[\r\n\f])|(.))", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.DOTALL)
_RASTER_DATA = re.compile(r"data:image/(?:png|jpeg|gif|webp)(?:;[a-z0-9._+=-]*)*,")
_CSS_URL = re.compile(r"url\(['\"]?(.?)", re.DOTALL)
# A value without these characters holds no scheme, function, escape or at-rule.
_PLAIN_VALUE = re.compile(r"[^:(\\@]*")


def inspect_markup(content: IO[bytes], mime: str) -> None:
    """Refuse an SVG drawing or XML document that could run script or load things when opened.

    Reads from position 0 and leaves the file there. Raises UploadRejected: `active_content`
    for what the module docstring lists, `type_mismatch` for content that is not well-formed
    XML or an SVG drawing whose root is not `<svg>`.
    """
    if mime not in MARKUP_TYPES:
        raise ValueError(f"inspect_markup checks {sorted(MARKUP_TYPES)}, not {mime!r}")
    label = label_of(mime)
    checker = _SvgChecker(label) if mime == SVG_TYPE else _XmlChecker(label)
    content.seek(0)
    try:
        _walk(content, checker)
    except DefusedXmlException:
        raise UploadRejected(
            "active_content",
            f"The {label} declares a DTD or entities (a <!DOCTYPE> section), which this upload "
            "does not accept.",
        ) from None
    except (ParseError, ValueError, LookupError) as exc:
        # pyexpat raises ValueError or LookupError for an encoding it cannot read.
        if isinstance(exc, ParseError):
            line, column = exc.position
            where = f" (line {line}, column {column + 1})"
        else:
            where = " (its character encoding cannot be read)"
        raise UploadRejected(
            "type_mismatch",
            f"The file's content is not well-formed XML{where}, so it cannot be checked.",
        ) from None
    finally:
        content.seek(0)


def _walk(content: IO[bytes], checker: _Checker) -> None:
    """Feed every event to `checker`, within the bounds; let go of each finished element."""
    open_elements: list[Element] = []
    count = 0
    events = iterparse(
        content,
        events=("start", "end", "pi"),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    for event, elem in events:
        if event == "start":
            count += 1
            if len(open_elements) >= MAX_DEPTH:
                checker.refuse(f"nests its elements more than {MAX_DEPTH} deep")
            if count > MAX_ELEMENTS:
                checker.refuse(f"has more than {MAX_ELEMENTS:,} elements")
            checker.start(elem, open_elements[-1] if open_elements else None)
            open_elements.append(elem)
        elif event == "end":
            open_elements.pop()
            checker.end(elem)
            elem.clear()
            # The earlier siblings are gone already, so a finished element is its parent's
            # first child (the parser may have appended later ones).
            if open_elements and len(parent := open_elements[-1]) and parent[0] is elem:
                del parent[0]
        else:
            checker.processing_instruction(elem.text or "")


class _Checker:
    def __init__(self, label: str) -> None:
        self.label = label

    def refuse(self, what: str) -> NoReturn:
        raise UploadRejected(
            "active_content", f"The {self.label} {what}, which this upload does not accept."
        )

    def start(self, elem: Element, parent: Element | None) -> None:
        namespace, _ = _split(elem.tag)
        if namespace == XINCLUDE_NS:
            self.refuse("includes other files (XInclude)")

    def end(self, elem: Element) -> None:
        pass

    def processing_instruction(self, text: str) -> None:
        target = text.split(None, 1)[0] if text.strip() else ""
        if target.lower() == "xml-stylesheet":
            self.refuse("asks the browser to apply a stylesheet (<?xml-stylesheet?>)")


class _XmlChecker(_Checker):
    def start(self, elem: Element, parent: Element | None) -> None:
        super().start(elem, parent)
        namespace, local = _split(elem.tag)
        if namespace in ACTIVE_VOCABULARIES:
            self.refuse(f"contains {ACTIVE_VOCABULARIES[namespace]} ({_tag(local)})")
        for name, value in elem.attrib.items():
            attr_namespace, attr_local = _split(name)
            if attr_namespace == XLINK_NS and _script_scheme(value):
                self.refuse(
                    f"contains a script address ({_script_scheme(value)} in the "
                    f"{_attr(attr_namespace, attr_local)} attribute of {_tag(local)})"
                )


class _SvgChecker(_Checker):
    def start(self, elem: Element, parent: Element | None) -> None:
        namespace, local = _split(elem.tag)
        if parent is None and (namespace, local) != (SVG_NS, "svg"):
            if local == "svg" and not namespace:
                actual = '<svg> without the SVG namespace (xmlns="http://www.w3.org/2000/svg")'
            else:
                actual = _tag(local)
            raise UploadRejected(
                "type_mismatch",
                f"The file's content is XML but not an SVG drawing: its outermost element is "
                f"{actual}, not <svg>.",
            )
        super().start(elem, parent)
        if parent is not None and parent.tag == f"{{{SVG_NS}}}style":
            self.refuse("has elements inside a <style> element")
        if namespace == SVG_NS:
            if local not in SVG_ELEMENTS:
                self.refuse(f"contains {_unknown_svg_element(local)}")
        elif namespace not in INERT_NAMESPACES:
            self.refuse(f"contains {_foreign_element(namespace, local)}")
        if namespace == SVG_NS and local in ANIMATIONS:
            self._check_animation(local, elem.get("attributeName", ""))
        for name, value in elem.attrib.items():
            self._check_attribute(local, name, value)

    def end(self, elem: Element) -> None:
        if elem.tag == f"{{{SVG_NS}}}style":
            self._check_css(elem.text or "", lambda: "<style>")

    def _check_attribute(self, element: str, name: str, value: str) -> None:
        namespace, local = _split(name)
        lowered = local.lower()

        def where() -> str:
            return f"the {_attr(namespace, local)} attribute of {_tag(element)}"

        if lowered.startswith("on") or namespace == XML_EVENTS_NS:
            self.refuse(f"contains an event handler ({where()})")
        if namespace == XML_NS and local == "base":
            self.refuse("changes the base address of its links (xml:base)")
        if lowered in ("href", "src"):
            self._check_reference(element, value, where)
        if not _PLAIN_VALUE.fullmatch(value):
            self._check_css(value, where)

    def _check_reference(self, element: str, value: str, where: Callable[[], str]) -> None:
        address = _squash(value)
        if not address or address.startswith("#"):
            return
        if scheme := _script_scheme(address):
            self.refuse(f"contains a script address ({scheme} in {where()})")
        if address.startswith("data:"):
            if element not in IMAGE_ELEMENTS:
                self.refuse(f"refers to embedded data instead of a part of the drawing ({where()})")
            if not _RASTER_DATA.match(address):
                self.refuse(f"embeds data that is not a PNG, JPEG, GIF or WebP image ({where()})")
            return
        if element == "a":
            self.refuse(f"links to another address ({where()})")
        self.refuse(f"refers to something outside the file ({where()})")

    def _check_css(self, text: str, where: Callable[[], str]) -> None:
        """Also used for every attribute value: presentation attributes are CSS values."""
        readings = _css_readings(text)
        for css in readings:
            if scheme := _script_scheme(css):
                self.refuse(f"contains a script address ({scheme} in {where()})")
        for css in readings:
            for token, shown in _CSS_HAZARDS.items():
                if token in css:
                    self.refuse(f"has a style that loads or runs something ({shown} in {where()})")
        for css in readings:
            if any(first != "#" for first in _css_url_starts(css)):
                self.refuse(
                    f"has a style that loads something from outside the file (url() in {where()})"
                )

    def _check_animation(self, element: str, attribute_name: str) -> None:
        target = _squash(attribute_name).rsplit(":", 1)[-1]
        if target in ("href", "base") or target.startswith("on"):
            changes = "an event handler" if target.startswith("on") else "a link"
            self.refuse(
                f"contains an animation that changes {changes} "
                f'(<{element} attributeName="{_shown(attribute_name)}">)'
            )


def _split(name: str) -> tuple[str, str]:
    """`{namespace}local` as ElementTree spells it, split."""
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return namespace, local
    return "", name


def _shown(text: str, limit: int = 30) -> str:
    """An uploader's name fit for a message: printable and short."""
    text = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)
    return text if len(text) <= limit else f"{text[: limit - 1]}\N{HORIZONTAL ELLIPSIS}"


def _tag(local: str) -> str:
    return f"<{_shown(local)}>"


def _attr(namespace: str, local: str) -> str:
    prefix = {XLINK_NS: "xlink:", XML_NS: "xml:"}.get(namespace, "")
    return _shown(prefix + local)


def _unknown_svg_element(local: str) -> str:
    if local.lower() == "script":
        return "a script (<script>)"
    if local.lower() == "foreignobject":
        return "embedded foreign content (<foreignObject>)"
    return f"an element that is not part of a static drawing ({_tag(local)})"


def _foreign_element(namespace: str, local: str) -> str:
    if namespace == XHTML_NS:
        return f"an HTML element ({_tag(local)})"
    if namespace == MATHML_NS:
        return f"a MathML element ({_tag(local)})"
    return f"an element from outside the SVG vocabulary ({_tag(local)})"


def _squash(value: str) -> str:
    return _INVISIBLE.sub("", value).lower()


def _script_scheme(value: str) -> str | None:
    squashed = _squash(value)
    return next((s for s in _SCRIPT_SCHEMES if s in squashed), None)


def _css_readings(text: str) -> set[str]:
    """The ways a browser might read `text` as CSS, squashed: raw, with its escapes decoded,
    without its comments. Checking every reading errs on the side of refusing."""
    readings = {text}
    if "/*" in text:
        readings.add(_CSS_COMMENT.sub("", text))
    if "\\" in text:
        readings |= {_css_unescape(reading) for reading in readings}
    return {_squash(reading) for reading in readings}


def _css_unescape(text: str) -> str:
    def decode(match: re.Match[str]) -> str:
        if match[1]:
            code = int(match[1], 16)
            valid = 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF
            return chr(code) if valid else "\N{REPLACEMENT CHARACTER}"
        return "" if match[2] else match[3]

    return _CSS_ESCAPE.sub(decode, text)


def _css_url_starts(css: str) -> Iterable[str]:
    """The first character of each url()'s address in squashed CSS ("" when there is none)."""
    for match in _CSS_URL.finditer(css):
        yield match[1]
