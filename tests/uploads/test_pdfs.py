"""The PDF step: active content is found by both scans and refused; damaged PDFs fail closed."""

from __future__ import annotations

import io
import tempfile
import time
import zlib

import magic
import pytest

from policies.models import UploadPolicy
from project.errors import UploadRejected
from tests.uploads import make_pdfs
from tests.uploads.test_sandbox import measured
from uploads import pdfs
from uploads.inspect import check_content
from uploads.pdfs import ACTIVE_KINDS, find_active_content, inspect_pdf

REFUSED_BY_POLICY = "; this upload does not accept PDFs with active content."
UNPARSEABLE_DETAIL = (
    "The PDF could not be checked for active content because it is damaged, encrypted or too "
    "large to check; this upload does not accept it."
)

# generator, the one kind it holds, how the refusal names it
ATTACKS = [
    (make_pdfs.pdf_with_javascript, "javascript", "JavaScript"),
    (make_pdfs.pdf_with_js_in_annotation, "javascript", "JavaScript"),
    (make_pdfs.pdf_with_hex_escaped_javascript, "javascript", "JavaScript"),
    (make_pdfs.pdf_with_js_in_object_stream, "javascript", "JavaScript"),
    (make_pdfs.encrypted_pdf_with_javascript, "javascript", "JavaScript"),
    (make_pdfs.pdf_with_launch_action, "launch", "a launch action"),
    (make_pdfs.pdf_with_embedded_file, "embedded_files", "an embedded file"),
    (make_pdfs.pdf_with_xfa, "xfa", "an XFA form"),
]
ATTACK_IDS = [attack[0].__name__ for attack in ATTACKS]

UNPARSEABLE = [
    make_pdfs.malformed_pdf_with_javascript,
    make_pdfs.malformed_pdf_with_js_in_object_stream,
    make_pdfs.garbage_pdf,
    make_pdfs.password_protected_pdf,
    make_pdfs.deeply_nested_pdf,
]

ALL_GENERATED = [
    make_pdfs.benign_pdf,
    make_pdfs.benign_pdf_with_compressed_url_text,
    make_pdfs.pdf_with_javascript_and_embedded_file,
    *(attack[0] for attack in ATTACKS),
    *UNPARSEABLE,
]


def rejection(data: bytes, refuse=ACTIVE_KINDS) -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        inspect_pdf(io.BytesIO(data), refuse=refuse)
    return caught.value


@pytest.mark.parametrize("make", ALL_GENERATED, ids=lambda make: make.__name__)
def test_generated_pdfs_are_sniffed_as_pdf(make):
    assert magic.from_buffer(make(), mime=True) == "application/pdf"


def test_benign_pdf_passes_though_its_text_mentions_javascript():
    data = make_pdfs.benign_pdf()
    assert b"JavaScript" in data  # in the page text and the title, as strings, never as a name

    assert find_active_content(io.BytesIO(data)) == set()
    inspect_pdf(io.BytesIO(data), refuse=ACTIVE_KINDS)


def test_compressed_streams_other_than_object_streams_are_not_inflated():
    """Only object streams hold objects; a page's compressed text is never read as names."""
    data = make_pdfs.benign_pdf_with_compressed_url_text()

    assert find_active_content(io.BytesIO(data)) == set()


@pytest.mark.parametrize(("make", "kind", "phrase"), ATTACKS, ids=ATTACK_IDS)
def test_attack_is_found_as_its_kind(make, kind, phrase):
    assert find_active_content(io.BytesIO(make())) == {kind}


@pytest.mark.parametrize(("make", "kind", "phrase"), ATTACKS, ids=ATTACK_IDS)
def test_each_scan_finds_the_attack_on_its_own(make, kind, phrase):
    """Defence in depth: pypdf's walk and the raw byte scan each see it without the other."""
    data = make()

    assert pdfs._kinds_found_by_pypdf(io.BytesIO(data)) == {kind}
    assert pdfs._kinds_found_in_raw_bytes(io.BytesIO(data)) == {kind}


@pytest.mark.parametrize(("make", "kind", "phrase"), ATTACKS, ids=ATTACK_IDS)
def test_attack_is_refused_with_a_detail_naming_it(make, kind, phrase):
    refused = rejection(make(), refuse={kind})

    assert refused.code == "active_content"
    assert refused.detail == f"The PDF contains {phrase}{REFUSED_BY_POLICY}"


def test_detail_names_every_kind_found():
    refused = rejection(make_pdfs.pdf_with_javascript_and_embedded_file())

    assert refused.detail == f"The PDF contains JavaScript and an embedded file{REFUSED_BY_POLICY}"


def test_detail_lists_three_kinds_in_plain_words():
    detail = pdfs._refusal_detail(["javascript", "launch", "xfa"])

    assert detail == (
        f"The PDF contains JavaScript, a launch action and an XFA form{REFUSED_BY_POLICY}"
    )


def test_kinds_not_refused_are_accepted():
    inspect_pdf(io.BytesIO(make_pdfs.pdf_with_embedded_file()), refuse={"javascript"})
    inspect_pdf(io.BytesIO(make_pdfs.pdf_with_javascript()), refuse={"embedded_files", "xfa"})
    inspect_pdf(io.BytesIO(make_pdfs.pdf_with_launch_action()), refuse=[])


def test_only_the_refused_kinds_are_named():
    both = make_pdfs.pdf_with_javascript_and_embedded_file()

    refused = rejection(both, refuse={"javascript"})

    assert refused.detail == f"The PDF contains JavaScript{REFUSED_BY_POLICY}"
    inspect_pdf(io.BytesIO(both), refuse={"launch", "xfa"})


def test_refuse_accepts_any_iterable():
    data = make_pdfs.pdf_with_xfa()

    assert rejection(data, refuse=(kind for kind in ["xfa"])).code == "active_content"


def test_unknown_kind_in_refuse_is_a_programming_error():
    with pytest.raises(ValueError, match="javscript"):
        inspect_pdf(io.BytesIO(make_pdfs.benign_pdf()), refuse={"javscript"})


def test_hex_escaped_names_are_decoded():
    data = make_pdfs.pdf_with_hex_escaped_javascript()
    assert b"/JavaScript" not in data
    assert b"/JS" not in data

    assert find_active_content(io.BytesIO(data)) == {"javascript"}


def test_javascript_hidden_in_a_compressed_object_stream_is_found():
    data = make_pdfs.pdf_with_js_in_object_stream()
    assert b"/JavaScript" not in data
    assert b"/JS" not in data
    assert b"/ObjStm" in data

    assert find_active_content(io.BytesIO(data)) == {"javascript"}


@pytest.mark.parametrize("make", UNPARSEABLE, ids=lambda make: make.__name__)
def test_unparseable_pdf_is_refused_even_when_nothing_is(make):
    refused = rejection(make(), refuse=())

    assert refused.code == "active_content"
    assert refused.detail == UNPARSEABLE_DETAIL


@pytest.mark.parametrize(
    "make",
    [make_pdfs.malformed_pdf_with_javascript, make_pdfs.malformed_pdf_with_js_in_object_stream],
)
def test_damage_does_not_hide_javascript_from_the_raw_scan(make):
    data = make()

    assert find_active_content(io.BytesIO(data)) == {"javascript", "unparseable"}
    assert rejection(data).detail == f"The PDF contains JavaScript{REFUSED_BY_POLICY}"


def test_garbage_and_password_protected_pdfs_report_only_unparseable():
    assert find_active_content(io.BytesIO(make_pdfs.garbage_pdf())) == {"unparseable"}
    assert find_active_content(io.BytesIO(make_pdfs.password_protected_pdf())) == {"unparseable"}


def test_nesting_beyond_the_limit_is_treated_as_damage():
    data = make_pdfs.deeply_nested_pdf(depth=pdfs._MAX_NESTING + 1)

    assert find_active_content(io.BytesIO(data)) == {"unparseable"}


class ReadRecorder(io.BytesIO):
    """A BytesIO that remembers the largest read asked of it."""

    largest_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.largest_read = max(self.largest_read, len(data))
        return data


def test_large_file_is_scanned_in_chunks_and_a_token_across_a_seam_is_found():
    seam = pdfs._CHUNK_SIZE * 3
    data = make_pdfs.padded_pdf_with_javascript(size=20 << 20, token_at=seam - 5)
    assert data[seam - 5 : seam + 6] == b"/JavaScript"
    source = ReadRecorder(data)

    assert pdfs._kinds_found_in_raw_bytes(source) == {"javascript"}
    assert source.largest_read <= pdfs._CHUNK_SIZE
    assert find_active_content(io.BytesIO(data)) == {"javascript", "unparseable"}


# Two seams: where one read ends, and where the scan of a buffer stops (the overlap before it).
SEAMS = [pdfs._CHUNK_SIZE, pdfs._CHUNK_SIZE - pdfs._OVERLAP]


@pytest.mark.parametrize("seam", SEAMS)
@pytest.mark.parametrize("offset", range(-12, 4))
def test_a_token_is_found_wherever_a_seam_cuts_it(seam, offset):
    data = make_pdfs.padded_pdf_with_javascript(size=pdfs._CHUNK_SIZE * 2, token_at=seam + offset)

    assert pdfs._kinds_found_in_raw_bytes(io.BytesIO(data)) == {"javascript"}


@pytest.mark.parametrize("position", [100, *SEAMS])
def test_short_name_in_binary_data_is_not_taken_for_javascript(position):
    """/JS turns up by chance in compressed data; only after PDF syntax does it count."""
    size = pdfs._CHUNK_SIZE * 2
    binary = _padded(b"%PDF-1.7\n", b"\x99", position, b"/JS \x81", size)
    syntax = _padded(b"%PDF-1.7\n", b" ", position - 10, b"<</S/Next/JS(x)>>", size)

    assert pdfs._kinds_found_in_raw_bytes(io.BytesIO(binary)) == set()
    assert pdfs._kinds_found_in_raw_bytes(io.BytesIO(syntax)) == {"javascript"}


def _padded(header: bytes, filler: bytes, position: int, token: bytes, size: int) -> bytes:
    """`token` at `position`, filler bytes around it."""
    before = header + filler * (position - len(header))
    return (before + token).ljust(size, filler)


def test_name_must_end_where_pdf_names_end():
    data = b"%PDF-1.7\n<</JavaScriptish 1/Launcher 2/XFAx 3>>"

    assert pdfs._kinds_found_in_raw_bytes(io.BytesIO(data)) == set()


def test_inflation_spends_the_budget_and_stops_past_it():
    compressor = zlib.compressobj()
    bomb = b"".join(compressor.compress(bytes(1 << 20)) for _ in range(100)) + compressor.flush()
    budget = pdfs._Budget(bytes_left=5 << 20)
    pieces = []

    with pytest.raises(pdfs._BudgetSpent):
        pieces.extend(pdfs._inflate(io.BytesIO(bomb), 0, budget))

    assert sum(map(len, pieces)) == 5 << 20
    assert max(map(len, pieces)) <= pdfs._CHUNK_SIZE


def test_inflation_within_the_budget_spends_what_it_inflated():
    budget = pdfs._Budget(bytes_left=5 << 20)

    pieces = list(pdfs._inflate(io.BytesIO(zlib.compress(bytes(3 << 20))), 0, budget))

    assert sum(map(len, pieces)) == 3 << 20
    assert budget.bytes_left == 2 << 20


def test_source_is_left_at_the_start():
    benign = io.BytesIO(make_pdfs.benign_pdf())
    attack = io.BytesIO(make_pdfs.pdf_with_javascript())
    garbage = io.BytesIO(make_pdfs.garbage_pdf())
    for source in (benign, attack, garbage):
        source.seek(17)

    find_active_content(attack)
    assert attack.tell() == 0
    inspect_pdf(benign, refuse=ACTIVE_KINDS)
    assert benign.tell() == 0
    for source in (attack, garbage):
        source.seek(17)
        with pytest.raises(UploadRejected):
            inspect_pdf(source, refuse=ACTIVE_KINDS)
        assert source.tell() == 0


def test_aes_encrypted_pdfs_that_open_without_a_password_are_checked():
    clean = io.BytesIO(make_pdfs.aes_encrypted_pdf(with_javascript=False))
    assert find_active_content(clean) == set()
    scripted = io.BytesIO(make_pdfs.aes_encrypted_pdf(with_javascript=True))
    assert find_active_content(scripted) == {"javascript"}


# Hostile work: object streams that inflate to far more than the file's size


@pytest.fixture(scope="module")
def object_stream_bombs() -> bytes:
    """8 object streams of 32 MiB of NULs each (pypdf skips white space a byte at a time)."""
    data = make_pdfs.pdf_with_object_stream_bombs(streams=8, inflated=32 << 20)
    assert len(data) < 300_000
    return data


def test_object_stream_bombs_are_refused_quickly_in_little_memory(object_stream_bombs):
    with measured() as cost:
        refused = rejection(object_stream_bombs, refuse=())

    assert refused.detail == UNPARSEABLE_DETAIL
    assert cost["seconds"] < 2
    assert cost["rss_growth_mib"] < 64


def test_object_stream_bombs_are_refused_through_the_pipeline_sandbox(object_stream_bombs):
    with tempfile.TemporaryFile() as upload:
        upload.write(object_stream_bombs)
        upload.seek(0)
        with measured() as cost, pytest.raises(UploadRejected) as caught:
            check_content(UploadPolicy(), upload, "application/pdf")
        assert upload.tell() == 0

    assert caught.value.code == "active_content"
    assert caught.value.detail == UNPARSEABLE_DETAIL
    assert cost["seconds"] < 3
    assert cost["rss_growth_mib"] < 64  # the parsing happened in a child process


def test_no_object_stream_pypdf_decodes_may_pass_its_cap():
    just_over = make_pdfs.pdf_with_object_stream_bombs(
        streams=1, inflated=pdfs._MAX_OBJECT_STREAM_BYTES + 1, filler=b"x"
    )
    under = make_pdfs.pdf_with_object_stream_bombs(
        streams=1, inflated=pdfs._MAX_OBJECT_STREAM_BYTES, filler=b"x"
    )

    assert find_active_content(io.BytesIO(just_over)) == {"unparseable"}
    assert find_active_content(io.BytesIO(under)) == set()


def test_object_streams_each_under_the_cap_share_one_budget():
    """Both scans charge every object stream to one budget of decoded bytes."""
    size = 3 << 20  # ~3 MiB each, read by both scans: 6 MiB charged per stream
    fits = pdfs._MAX_DECODED_BYTES // (2 * size)
    within = make_pdfs.pdf_with_object_stream_bombs(streams=fits, inflated=size, filler=b"x")
    beyond = make_pdfs.pdf_with_object_stream_bombs(streams=fits + 1, inflated=size, filler=b"x")

    assert find_active_content(io.BytesIO(within)) == set()
    assert pdfs._kinds_found_by_pypdf(io.BytesIO(beyond)) == set()  # pypdf alone fits
    assert find_active_content(io.BytesIO(beyond)) == {"unparseable"}


def test_time_budget_is_checked_between_objects():
    data = make_pdfs.pdf_with_object_stream_bombs(streams=8, inflated=2 << 20)  # white space

    assert find_active_content(io.BytesIO(data), time_budget=60) == set()
    started = time.perf_counter()
    assert find_active_content(io.BytesIO(data), time_budget=0.2) == {"unparseable"}
    assert time.perf_counter() - started < 2


def test_no_time_at_all_refuses_even_a_benign_pdf():
    assert find_active_content(io.BytesIO(make_pdfs.benign_pdf()), time_budget=0) == {"unparseable"}


def test_an_index_flood_is_read_only_as_far_as_the_cross_reference_table_points():
    data = make_pdfs.pdf_with_flooded_object_stream_index(entries=200_000)

    started = time.perf_counter()
    assert find_active_content(io.BytesIO(data)) == set()
    assert time.perf_counter() - started < 0.5


def test_a_hostile_object_count_does_not_hide_javascript_in_an_object_stream():
    data = make_pdfs.pdf_with_js_in_object_stream(declared_objects=1_000_000)

    assert pdfs._kinds_found_by_pypdf(io.BytesIO(data)) == {"javascript"}


def test_an_object_stream_indexing_past_the_limit_is_over_the_budget():
    with pytest.raises(pdfs._BudgetSpent):
        pdfs._read_no_further_than(object(), pdfs._MAX_OBJECTS_PER_STREAM)


def test_walked_object_streams_are_dropped_from_pypdfs_cache(monkeypatch):
    """After the objects of one object stream are walked, pypdf holds no decoded stream data: only
    the object streams not walked yet, undecoded."""
    cached_after_each: list[dict[int, bool]] = []
    walk = pdfs._names_in_object_stream

    def recording(reader, stream_number, members, budget):
        names = walk(reader, stream_number, members, budget)
        cached_after_each.append(
            {
                number: getattr(obj, "decoded_self", None) is not None
                for (_, number), obj in reader.resolved_objects.items()
            }
        )
        return names

    monkeypatch.setattr(pdfs, "_names_in_object_stream", recording)
    data = make_pdfs.pdf_with_object_stream_bombs(streams=3, inflated=1 << 20)  # streams 6, 8, 10

    assert pdfs._kinds_found_by_pypdf(io.BytesIO(data)) == set()
    assert cached_after_each == [{8: False, 10: False}, {10: False}, {}]
