"""The markup step: SVG drawings are held to a static-drawing allowlist, XML documents to the
vocabularies a browser does not act on, and neither may carry a DTD. Every attack is built here."""

from __future__ import annotations

import base64
import io
import tempfile
import time
import tracemalloc

import pytest

from project.errors import UploadRejected
from tests.uploads import make_images
from uploads import markup, sandbox
from uploads.markup import MAX_DEPTH, MAX_ELEMENTS, inspect_markup

SVG = "image/svg+xml"
XML = "text/xml"
OPEN_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'width="100" height="100">'
)
PNG_DATA = "data:image/png;base64," + base64.b64encode(make_images.benign_png()).decode()
DTD_DETAIL = "declares a DTD or entities (a <!DOCTYPE> section), which this upload does not accept."
MALFORMED = "The file's content is not well-formed XML"


def svg(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{OPEN_SVG}{body}</svg>\n'.encode()


def rejection(data: bytes, mime: str = SVG) -> UploadRejected:
    content = io.BytesIO(data)
    with pytest.raises(UploadRejected) as caught:
        inspect_markup(content, mime)
    assert content.tell() == 0
    assert_human(caught.value.detail)
    return caught.value


def accepted(data: bytes, mime: str = SVG) -> None:
    content = io.BytesIO(data)
    content.seek(7)
    assert inspect_markup(content, mime) is None
    assert content.tell() == 0


def assert_human(detail: str) -> None:
    """One or two short sentences, printable, without a long run of the uploader's text."""
    assert detail.startswith("The ")
    assert detail.endswith(".")
    assert detail.isprintable()
    assert len(detail) < 260
    assert max(len(word) for word in detail.split()) <= 50


CLEAN_SVG = svg(
    """
  <title>Logo</title><desc>A gradient disc with a caption</desc>
  <metadata>
    <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
             xmlns:dc="http://purl.org/dc/elements/1.1/">
      <rdf:Description rdf:about=""><dc:title>Logo</dc:title></rdf:Description>
    </rdf:RDF>
  </metadata>
  <sodipodi:namedview xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
      xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" inkscape:zoom="1.5"/>
  <style type="text/css"><![CDATA[ .disc { fill: url(#grad); stroke: #333 } ]]></style>
  <defs>
    <linearGradient id="grad" x1="0" x2="1"><stop offset="0" stop-color="red"/>
      <stop offset="1" stop-color="blue"/></linearGradient>
    <radialGradient id="glow" xlink:href="#grad"/>
    <filter id="blur"><feGaussianBlur stdDeviation="2"/><feImage href="#dot"/></filter>
    <clipPath id="clip"><rect width="50" height="50"/></clipPath>
    <circle id="dot" r="5"/>
    <path id="curve" d="M10 80 Q 52.5 10, 95 80"/>
  </defs>
  <circle class="disc" cx="50" cy="50" r="40" filter="url(#blur)" clip-path="url( '#clip' )"
      style="opacity: .9; fill: url(&quot;#glow&quot;)">
    <animate attributeName="opacity" values="1;0.5;1" dur="2s" repeatCount="indefinite"/>
  </circle>
  <use href="#dot" x="10" y="10"/><use xlink:href="#dot" x="20" y="10"/>
  <a href="#dot"><text x="10" y="90" font-family="sans-serif">Hello <tspan>world</tspan>
    <textPath href="#curve">along a curve</textPath></text></a>
  <image width="10" height="10" href="PNG_DATA"/>
  <image width="10" height="10" xlink:href="
      data:image/png;base64,
      AAAA"/>
""".replace("PNG_DATA", PNG_DATA)
)

CLEAN_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<?custom-instruction keep="me"?>
<!-- a comment -->
<catalog xmlns="urn:example:catalog" xmlns:x="urn:example:extra">
  <book id="b1" x:note="a:b (c)"><title>XML &amp; you</title><![CDATA[<script>not markup</script>]]>
  </book>
  <x:link href="https://example.com/">home</x:link>
</catalog>
"""


def test_a_clean_svg_is_accepted_and_left_at_position_zero():
    accepted(CLEAN_SVG)


def test_a_clean_xml_document_is_accepted():
    accepted(CLEAN_XML, XML)


def test_a_clean_svg_in_utf16_is_accepted():
    accepted(CLEAN_SVG.decode().replace("UTF-8", "UTF-16").encode("utf-16"))


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n<lolz>&lol9;</lolz>"
).encode()
QUADRATIC_BLOWUP = (
    f'<?xml version="1.0"?>\n<!DOCTYPE kaboom [<!ENTITY a "{"x" * 50_000}">]>\n'
    f"<kaboom>{'&a;' * 50_000}</kaboom>"
).encode()
XXE_FILE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b"<foo>&xxe;</foo>"
)
XXE_PARAMETER = (
    b'<?xml version="1.0"?>\n<!DOCTYPE foo [<!ENTITY % remote SYSTEM "http://evil.example/x.dtd">'
    b"%remote;]>\n<foo/>"
)
XXE_EXTERNAL_DTD = (
    b'<?xml version="1.0"?>\n<!DOCTYPE foo SYSTEM "http://evil.example/x.dtd">\n<foo/>'
)
PLAIN_DOCTYPE = b'<?xml version="1.0"?>\n<!DOCTYPE note>\n<note>hi</note>'
SVG_DOCTYPE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>'
)
SVG_WITH_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>'
)
DTD_ATTACKS = {
    "billion_laughs": BILLION_LAUGHS,
    "quadratic_blowup": QUADRATIC_BLOWUP,
    "xxe_file": XXE_FILE,
    "xxe_parameter_entity": XXE_PARAMETER,
    "xxe_external_dtd": XXE_EXTERNAL_DTD,
    "plain_doctype": PLAIN_DOCTYPE,
    "svg_public_doctype": SVG_DOCTYPE,
    "svg_external_entity": SVG_WITH_ENTITY,
}


@pytest.mark.parametrize("mime", [XML, SVG])
@pytest.mark.parametrize("data", DTD_ATTACKS.values(), ids=DTD_ATTACKS.keys())
def test_any_dtd_is_refused_before_anything_expands(data, mime):
    started = time.perf_counter()
    refused = rejection(data, mime)

    assert time.perf_counter() - started < 1
    assert refused.code == "active_content"
    noun = "XML document" if mime == XML else "SVG drawing"
    assert refused.detail == f"The {noun} {DTD_DETAIL}"


# name, body inside <svg>, what the detail says
SVG_ATTACKS = [
    ("script", "<script>alert(1)</script>", "contains a script (<script>)"),
    (
        "script_with_href",
        '<script href="data:text/javascript,alert(1)"/>',
        "contains a script (<script>)",
    ),
    ("onload_on_root", None, "contains an event handler (the onload attribute of <svg>)"),
    (
        "onclick_nested",
        '<g><g><rect width="1" height="1" onclick="alert(1)"/></g></g>',
        "contains an event handler (the onclick attribute of <rect>)",
    ),
    (
        "onbegin_on_animation",
        '<animate attributeName="x" onbegin="alert(1)"/>',
        "contains an event handler (the onbegin attribute of <animate>)",
    ),
    (
        "xml_events_listener_attribute",
        '<g xmlns:ev="http://www.w3.org/2001/xml-events" ev:event="click"/>',
        "contains an event handler (the event attribute of <g>)",
    ),
    (
        "xlink_href_javascript",
        '<a xlink:href="javascript:alert(1)"><text>x</text></a>',
        "contains a script address (javascript: in the xlink:href attribute of <a>)",
    ),
    (
        "vbscript",
        '<a href="vbscript:msgbox(1)"><text>x</text></a>',
        "contains a script address (vbscript: in the href attribute of <a>)",
    ),
    (
        "foreign_object_iframe",
        '<foreignObject width="100" height="100"><iframe xmlns="http://www.w3.org/1999/xhtml" '
        'src="javascript:alert(1)"/></foreignObject>',
        "contains embedded foreign content (<foreignObject>)",
    ),
    (
        "xhtml_iframe",
        '<h:iframe xmlns:h="http://www.w3.org/1999/xhtml" src="https://evil.example/"/>',
        "contains an HTML element (<iframe>)",
    ),
    (
        "xhtml_script_default_namespace",
        '<g><script xmlns="http://www.w3.org/1999/xhtml">alert(1)</script></g>',
        "contains an HTML element (<script>)",
    ),
    (
        "xhtml_embed",
        '<embed xmlns="http://www.w3.org/1999/xhtml"/>',
        "contains an HTML element (<embed>)",
    ),
    (
        "xhtml_object",
        '<object xmlns="http://www.w3.org/1999/xhtml" data="x.swf"/>',
        "contains an HTML element (<object>)",
    ),
    (
        "mathml",
        '<math xmlns="http://www.w3.org/1998/Math/MathML" href="javascript:alert(1)"/>',
        "contains a MathML element (<math>)",
    ),
    (
        "unknown_namespace",
        '<x:widget xmlns:x="urn:example:widgets"/>',
        "contains an element from outside the SVG vocabulary (<widget>)",
    ),
    (
        "no_namespace_script",
        '<script xmlns="">alert(1)</script>',
        "contains an element from outside the SVG vocabulary (<script>)",
    ),
    (
        "svg_handler",
        '<handler type="application/ecmascript">alert(1)</handler>',
        "contains an element that is not part of a static drawing (<handler>)",
    ),
    (
        "svg_font_face_uri",
        '<font-face><font-face-src><font-face-uri xlink:href="https://evil.example/f.svg"/>'
        "</font-face-src></font-face>",
        "contains an element that is not part of a static drawing (<font-face>)",
    ),
    (
        "animate_href_to_javascript",
        '<a href="#x"><animate attributeName="href" to="javascript:alert(1)"/><text>x</text></a>',
        'contains an animation that changes a link (<animate attributeName="href">)',
    ),
    (
        "animate_prefixed_xlink_href",
        '<a xlink:href="#x"><animate attributeName="xlink:href" values="#x;#y"/></a>',
        'contains an animation that changes a link (<animate attributeName="xlink:href">)',
    ),
    (
        "set_onclick",
        '<rect width="1" height="1"><set attributeName="onclick" to="alert(1)"/></rect>',
        'contains an animation that changes an event handler (<set attributeName="onclick">)',
    ),
    (
        "animate_transform_href",
        '<use href="#a"><animateTransform attributeName="href" type="rotate"/></use>',
        'contains an animation that changes a link (<animateTransform attributeName="href">)',
    ),
    (
        "animate_values_javascript",
        '<rect><animate attributeName="fill" values="red;javascript:alert(1)"/></rect>',
        "contains a script address (javascript: in the values attribute of <animate>)",
    ),
    (
        "use_http",
        '<use href="http://evil.example/x.svg#a"/>',
        "refers to something outside the file (the href attribute of <use>)",
    ),
    (
        "use_protocol_relative",
        '<use xlink:href="//evil.example/x.svg#a"/>',
        "refers to something outside the file (the xlink:href attribute of <use>)",
    ),
    (
        "use_file",
        '<use href="file:///etc/passwd#a"/>',
        "refers to something outside the file (the href attribute of <use>)",
    ),
    (
        "use_relative",
        '<use href="other.svg#a"/>',
        "refers to something outside the file (the href attribute of <use>)",
    ),
    (
        "use_data_svg",
        '<use href="data:image/svg+xml;base64,PHN2Zy8+#a"/>',
        "refers to embedded data instead of a part of the drawing (the href attribute of <use>)",
    ),
    (
        "image_http",
        '<image href="https://tracker.example/pixel.png"/>',
        "refers to something outside the file (the href attribute of <image>)",
    ),
    (
        "image_data_html",
        '<image href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="/>',
        "embeds data that is not a PNG, JPEG, GIF or WebP image (the href attribute of <image>)",
    ),
    (
        "image_data_svg",
        '<image xlink:href="data:image/svg+xml,&lt;svg onload=alert(1)&gt;"/>',
        "embeds data that is not a PNG, JPEG, GIF or WebP image (the xlink:href attribute of "
        "<image>)",
    ),
    (
        "fe_image_external",
        '<filter><feImage href="https://evil.example/x.png"/></filter>',
        "refers to something outside the file (the href attribute of <feImage>)",
    ),
    (
        "link_elsewhere",
        '<a href="https://phish.example/"><text>x</text></a>',
        "links to another address (the href attribute of <a>)",
    ),
    (
        "xml_base",
        '<g xml:base="https://evil.example/"><use href="#a"/></g>',
        "changes the base address of its links (xml:base)",
    ),
    (
        "style_import",
        "<style>@import url(http://evil.example/x.css);</style>",
        "has a style that loads or runs something (@import in <style>)",
    ),
    (
        "style_import_string",
        '<style>@import "//evil.example/x.css";</style>',
        "has a style that loads or runs something (@import in <style>)",
    ),
    (
        "style_import_escaped",
        "<style>@\\69 mport 'x.css';</style>",
        "has a style that loads or runs something (@import in <style>)",
    ),
    (
        "style_import_split_by_comment_node",
        "<style>@im<!-- -->port 'x.css';</style>",
        "has a style that loads or runs something (@import in <style>)",
    ),
    (
        "style_url_external",
        "<style>rect { fill: url(https://evil.example/x.svg#p) }</style>",
        "has a style that loads something from outside the file (url() in <style>)",
    ),
    (
        "style_font_face",
        "<style>@font-face { font-family: x; src: url('//evil.example/f.woff') }</style>",
        "has a style that loads something from outside the file (url() in <style>)",
    ),
    (
        "style_expression",
        "<style>rect { width: expression(alert(1)) }</style>",
        "has a style that loads or runs something (expression() in <style>)",
    ),
    (
        "style_expression_split_by_comment",
        '<rect style="xss: expr/*x*/ession(alert(1))"/>',
        "has a style that loads or runs something (expression() in the style attribute of <rect>)",
    ),
    (
        "style_javascript",
        "<style>rect { background: url( 'java\\73 cript:alert(1)' ) }</style>",
        "contains a script address (javascript: in <style>)",
    ),
    (
        "style_with_child_element",
        '<style><x:y xmlns:x="http://www.inkscape.org/namespaces/inkscape"/></style>',
        "has elements inside a <style> element",
    ),
    (
        "style_attribute_javascript",
        '<rect style="background:url(javascript:alert(1))"/>',
        "contains a script address (javascript: in the style attribute of <rect>)",
    ),
    (
        "style_attribute_external_url",
        '<rect style="fill: u\\72l(https://evil.example/p.svg#p)"/>',
        "has a style that loads something from outside the file (url() in the style attribute of "
        "<rect>)",
    ),
    (
        "style_attribute_image_set",
        '<rect style="cursor: -webkit-image-set(&quot;https://evil.example/c.png&quot; 1x)"/>',
        "has a style that loads or runs something (image-set() in the style attribute of <rect>)",
    ),
    (
        "presentation_attribute_external_url",
        '<rect fill="url(https://evil.example/p.svg#p)"/>',
        "has a style that loads something from outside the file (url() in the fill attribute of "
        "<rect>)",
    ),
    (
        "xinclude",
        '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" '
        'parse="text"/>',
        "includes other files (XInclude)",
    ),
    (
        "xml_stylesheet_after_root",
        '<?xml-stylesheet type="text/xsl" href="data:,x"?>',
        "asks the browser to apply a stylesheet (<?xml-stylesheet?>)",
    ),
]


@pytest.mark.parametrize(
    ("body", "found"), [a[1:] for a in SVG_ATTACKS], ids=[a[0] for a in SVG_ATTACKS]
)
def test_svg_active_content_is_refused_by_name(body, found):
    data = svg(body) if body else svg("").replace(b'height="100">', b'height="100" onload="x()">')

    refused = rejection(data)

    assert refused.code == "active_content"
    assert refused.detail == f"The SVG drawing {found}, which this upload does not accept."


@pytest.mark.parametrize(
    "address",
    [
        "javascript:alert(1)",
        "  JaVaScRiPt:alert(1)",
        "java&#x09;script:alert(1)",
        "java&#10;script:alert(1)",
        "&#x20;&#x0D;javascript:alert(1)",
        "&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)",
        "java\u200bscript:alert(1)",
        "JAVASCRIPT&#x3A;alert(1)",
        "vbscript:msgbox(1)",
    ],
)
@pytest.mark.parametrize("attribute", ["href", "xlink:href"])
def test_script_addresses_are_refused_however_spelt(address, attribute):
    refused = rejection(svg(f'<a {attribute}="{address}"><text>go</text></a>'))

    assert refused.code == "active_content"
    assert refused.detail.startswith("The SVG drawing contains a script address (")
    assert f"the {attribute} attribute of <a>" in refused.detail


@pytest.mark.parametrize(
    "href",
    [
        PNG_DATA,
        "data:image/jpeg;base64,/9j/4AAQ",
        "data:image/gif;base64,R0lGODlh",
        "DATA:IMAGE/WEBP;BASE64,UklGRg==",
    ],
)
def test_embedded_raster_images_are_accepted(href):
    accepted(svg(f'<image width="1" height="1" href="{href}"/>'))


def test_a_long_uploader_name_is_shortened_in_the_detail():
    refused = rejection(svg(f'<set attributeName="on{"x" * 500}" to="alert(1)"/>'))

    assert refused.code == "active_content"
    assert "x" * 60 not in refused.detail
    assert "xxxxxx\N{HORIZONTAL ELLIPSIS}" in refused.detail


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>', "<html>"),
        (b"<catalog/>", "<catalog>"),
        (
            b'<svg width="1"><script>alert(1)</script></svg>',
            '<svg> without the SVG namespace (xmlns="http://www.w3.org/2000/svg")',
        ),
        (b'<svg xmlns="urn:not-svg"/>', "<svg>"),
    ],
    ids=["xhtml", "plain_xml", "svg_without_namespace", "svg_in_another_namespace"],
)
def test_an_svg_whose_root_is_not_svg_is_a_type_mismatch(data, shown):
    refused = rejection(data)

    assert refused.code == "type_mismatch"
    assert refused.detail == (
        f"The file's content is XML but not an SVG drawing: its outermost element is {shown}, "
        "not <svg>."
    )


ROOTS = {SVG: b'<svg xmlns="http://www.w3.org/2000/svg"', XML: b"<doc"}


@pytest.mark.parametrize("mime", [SVG, XML])
@pytest.mark.parametrize(
    ("template", "where"),
    [
        (b"", "line 1, column 1"),
        (b"just some text", "line 1, column 1"),
        (b"ROOT><g>\n<rect/>", "line 2, column 8"),
        (b"ROOT><g></nope></g>", "line 1, column"),
        (b"ROOT/>\n\n<svg/>", "line 3, column 1"),
        (b"ROOT>\n&undefined;</svg>", "line 2, column 1"),
        (b"ROOT><g a='1' a='2'/></svg>", "line 1, column"),
        (b'<?xml version="1.0" encoding="UTF-7"?>ROOT/>', "its character encoding cannot be read"),
        (
            b'<?xml version="1.0" encoding="no-such"?>ROOT/>',
            "its character encoding cannot be read",
        ),
        (b"ROOT>\xff\xfe</svg>", "line 1, column"),
    ],
    ids=[
        "empty",
        "text",
        "unclosed",
        "mismatched_tag",
        "two_roots",
        "undefined_entity",
        "duplicate_attribute",
        "utf7",
        "unknown_encoding",
        "invalid_utf8",
    ],
)
def test_content_that_is_not_well_formed_is_a_type_mismatch(template, where, mime):
    refused = rejection(template.replace(b"ROOT", ROOTS[mime]), mime)

    assert refused.code == "type_mismatch"
    assert refused.detail.startswith(f"The file's content is not well-formed XML ({where}")
    assert refused.detail.endswith("), so it cannot be checked.")


# name, document, what the detail says
XML_ATTACKS = [
    (
        "xslt_stylesheet_pi",
        b'<?xml version="1.0"?>\n<?xml-stylesheet type="text/xsl" href="#x"?>\n<doc/>',
        "asks the browser to apply a stylesheet (<?xml-stylesheet?>)",
    ),
    (
        "css_stylesheet_pi",
        b"<?xml-stylesheet href='https://evil.example/x.css'?><doc/>",
        "asks the browser to apply a stylesheet (<?xml-stylesheet?>)",
    ),
    (
        "xinclude",
        b'<doc xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></doc>',
        "includes other files (XInclude)",
    ),
    (
        "xhtml_script",
        b'<doc><s:script xmlns:s="http://www.w3.org/1999/xhtml">alert(1)</s:script></doc>',
        "contains HTML (<script>)",
    ),
    (
        "xhtml_root",
        b'<html xmlns="http://www.w3.org/1999/xhtml"><body onload="alert(1)"/></html>',
        "contains HTML (<html>)",
    ),
    (
        "svg_inside",
        b'<doc><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/></doc>',
        "contains SVG (<svg>)",
    ),
    (
        "xslt_inline",
        b'<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"/>',
        "contains an XSLT stylesheet (<stylesheet>)",
    ),
    (
        "xlink_javascript",
        b'<doc xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:type="simple" '
        b'xlink:href="  jAvA&#9;script:alert(1)">x</a></doc>',
        "contains a script address (javascript: in the xlink:href attribute of <a>)",
    ),
]


@pytest.mark.parametrize(
    ("data", "found"), [a[1:] for a in XML_ATTACKS], ids=[a[0] for a in XML_ATTACKS]
)
def test_xml_that_a_browser_would_act_on_is_refused(data, found):
    refused = rejection(data, XML)

    assert refused.code == "active_content"
    assert refused.detail == f"The XML document {found}, which this upload does not accept."


def nested(depth: int) -> bytes:
    return svg("<g>" * (depth - 1) + "</g>" * (depth - 1))


def test_nesting_up_to_the_limit_is_accepted():
    accepted(nested(MAX_DEPTH))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deeper_nesting_is_refused(depth):
    refused = rejection(nested(depth))

    assert refused.code == "active_content"
    assert refused.detail == (
        f"The SVG drawing nests its elements more than {MAX_DEPTH} deep, which this upload "
        "does not accept."
    )


def test_elements_up_to_the_limit_are_accepted():
    accepted(b"<doc>" + b"<i/>" * (MAX_ELEMENTS - 1) + b"</doc>", XML)


def test_more_elements_than_the_limit_are_refused():
    refused = rejection(b"<doc>" + b"<i/>" * MAX_ELEMENTS + b"</doc>", XML)

    assert refused.code == "active_content"
    assert refused.detail == (
        "The XML document has more than 200,000 elements, which this upload does not accept."
    )


def test_a_large_flat_drawing_is_checked_in_bounded_memory():
    data = svg('<rect width="1" height="1" fill="url(#g)" class="a b c"/>' * 20_000)
    content = io.BytesIO(data)

    tracemalloc.start()
    try:
        inspect_markup(content, SVG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # The whole tree would take about 8 MiB, the cleared elements left in place almost 2 MiB;
    # the walk holds one 16 KiB chunk's elements (about 0.25 MiB).
    assert peak < 1 << 20, peak


def test_other_markup_types_are_not_this_check():
    with pytest.raises(ValueError, match="text/html"):
        inspect_markup(io.BytesIO(b"<html></html>"), "text/html")


LIMITS = sandbox.Limits(cpu_seconds=5, memory_bytes=256 << 20, wall_seconds=15)


def test_the_check_runs_in_the_sandbox_on_an_upload_temp_file():
    with tempfile.NamedTemporaryFile() as clean, tempfile.NamedTemporaryFile() as laughs:
        clean.write(CLEAN_SVG)
        laughs.write(BILLION_LAUGHS)
        clean.seek(0)
        laughs.seek(0)

        assert sandbox.run(inspect_markup, clean, mime=SVG, limits=LIMITS) is None
        with pytest.raises(UploadRejected) as caught:
            sandbox.run(inspect_markup, laughs, mime=XML, limits=LIMITS)

        assert (clean.tell(), laughs.tell()) == (0, 0)
    assert caught.value.code == "active_content"
    assert caught.value.detail == f"The XML document {DTD_DETAIL}"


def test_the_limits_are_the_documented_ones():
    assert (markup.MAX_DEPTH, markup.MAX_ELEMENTS) == (256, 200_000)
