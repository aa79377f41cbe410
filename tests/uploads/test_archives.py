"""The archive step: bombs, traversal, links, encryption, nesting and damage are refused by name."""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import tempfile
import zipfile

import magic
import pytest

from policies.models import UploadPolicy
from project.errors import UploadRejected
from tests.uploads import make_archives as make
from tests.uploads.test_sandbox import measured
from uploads import archives, sandbox
from uploads.archives import ArchiveLimits, inspect_archive

MIB = 1024 * 1024
ZIP, TAR, GZIP = "application/zip", "application/x-tar", "application/gzip"
WORD = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DEFAULTS = ArchiveLimits(max_entries=1000, max_expanded_bytes=100 * MIB, max_ratio=100, max_depth=0)


def limits(**changes: int) -> ArchiveLimits:
    return ArchiveLimits(**{**DEFAULTS.__dict__, **changes})


def refusal(data: bytes, mime: str = ZIP, archive_limits: ArchiveLimits = DEFAULTS) -> str:
    """The detail of the archive_rejected refusal `data` meets."""
    with pytest.raises(UploadRejected) as caught:
        inspect_archive(io.BytesIO(data), mime, archive_limits)
    assert caught.value.code == "archive_rejected"
    return caught.value.detail


def accepted(data: bytes, mime: str = ZIP, archive_limits: ArchiveLimits = DEFAULTS) -> None:
    content = io.BytesIO(data)
    assert inspect_archive(content, mime, archive_limits) is None
    assert content.tell() == 0


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    return make.zip_bomb(50)


def test_limits_come_from_the_policy():
    policy = UploadPolicy(
        archive_max_entries=7,
        archive_max_expanded_bytes=5 * MIB,
        archive_max_ratio=30,
        archive_max_depth=2,
    )
    assert ArchiveLimits.of(policy) == ArchiveLimits(7, 5 * MIB, 30, 2)
    assert ArchiveLimits.of(UploadPolicy()) == DEFAULTS


@pytest.mark.parametrize(
    ("build", "mime"),
    [
        (make.normal_zip, ZIP),
        (lambda: make.zip_of([("a.txt", make.TEXT)], method=zipfile.ZIP_STORED), ZIP),
        (lambda: make.zip_of([("a.txt", make.TEXT)], method=zipfile.ZIP_BZIP2), ZIP),
        (lambda: make.zip_of([]), ZIP),
        (make.docx, WORD),
        (make.normal_tar, TAR),
        (make.normal_tar_gz, GZIP),
        (lambda: make.gzip_of(make.TEXT, "notes.txt"), GZIP),
    ],
    ids=["zip", "stored", "bzip2", "empty", "docx", "tar", "tar.gz", "gzip"],
)
def test_ordinary_archives_are_accepted(build, mime):
    accepted(build(), mime)


def test_zip64_entries_and_streamed_zips_are_accepted():
    accepted(make.zip64_entry_zip())
    data = make.streamed_zip({"a.txt": make.TEXT, "b.txt": make.TEXT * 3})
    assert {info.flag_bits & 0x8 for info in zipfile.ZipFile(io.BytesIO(data)).infolist()} == {8}
    accepted(data)


def test_a_zip64_directory_is_found_and_counted():
    """65,536 entries: too many for the classic end record, so zipfile writes a zip64 one."""
    data = make.zip_of([(f"{i}", b"") for i in range(65_536)], method=zipfile.ZIP_STORED)
    assert b"PK\x06\x06" in data[-200:]
    assert refusal(data, archive_limits=limits(max_entries=65_535)) == (
        "The archive holds more than 65,535 entries, the most this upload accepts."
    )
    accepted(data, archive_limits=limits(max_entries=65_536))


def test_a_generated_docx_is_sniffed_as_word_and_accepted():
    data = make.docx()
    sniffed = magic.from_buffer(data, mime=True)
    assert sniffed == WORD
    assert archives.ARCHIVE_FORMATS[sniffed] == "zip"
    accepted(data, sniffed)


def test_only_archive_types_are_inspected():
    with pytest.raises(ValueError, match="not an archive type"):
        inspect_archive(io.BytesIO(b"hello"), "text/plain", DEFAULTS)


# Bombs


def test_a_zip_bomb_is_refused_for_its_ratio(zip_bomb):
    detail = refusal(zip_bomb)
    assert detail.startswith('The entry "bomb.txt" expands 1,0')
    assert detail.endswith("times its compressed size; this upload accepts at most 100 times.")


def test_a_zip_bomb_within_the_ratio_is_refused_for_its_size(zip_bomb):
    detail = refusal(zip_bomb, archive_limits=limits(max_ratio=10_000, max_expanded_bytes=10 * MIB))
    assert detail == (
        "The archive's entries add up to 50 MiB once expanded; this upload accepts at most 10 MiB."
    )


def test_a_zip_lying_about_its_size_is_refused_by_the_real_count():
    detail = refusal(make.lying_zip(declared=1000), archive_limits=limits(max_ratio=10_000))
    assert detail == (
        'The entry "bomb.txt" holds more data than the archive\'s directory says (1000 bytes); '
        "the archive is damaged, so it is not accepted."
    )


def test_a_zip_lying_in_its_directory_only_is_refused_as_damaged():
    detail = refusal(make.lying_zip(declared=1000, local_too=False))
    assert detail == (
        'The archive is damaged: its directory and the entry "bomb.txt" itself disagree (name, '
        "sizes, checksum or compression), so it is not accepted."
    )


@pytest.mark.parametrize("build", [make.tar_gz_bomb, make.gzip_bomb])
def test_gzip_bombs_are_refused_for_the_ratio_of_the_whole_stream(build):
    detail = refusal(build(50), GZIP)
    assert detail == (
        "The archive's compressed content expands more than 100 times its compressed size; this "
        "upload accepts at most 100 times."
    )


def test_a_tar_gz_bomb_within_the_ratio_is_refused_for_its_size():
    detail = refusal(make.tar_gz_bomb(50), GZIP, limits(max_ratio=10_000, max_expanded_bytes=MIB))
    assert detail == (
        "The archive expands to more than 1 MiB, the most this upload accepts (passed while "
        'reading "zeros.bin").'
    )


def test_the_expanded_total_counts_real_bytes_across_entries():
    data = make.tar_with_files(["a.bin", "b.bin"], bytes(600_000))
    accepted(data, TAR, limits(max_expanded_bytes=2 * MIB))
    assert refusal(data, TAR, limits(max_expanded_bytes=1_000_000)) == (
        "The archive expands to more than 976.6 KiB, the most this upload accepts (passed while "
        'reading "b.bin").'
    )


def test_small_entries_skip_the_ratio_check():
    small = make.zip_of([("blank.txt", bytes(archives.RATIO_FLOOR_BYTES))])
    accepted(small)
    large = make.zip_of([("blank.txt", bytes(archives.RATIO_FLOOR_BYTES + 1))])
    assert "expands" in refusal(large)


def test_a_bomb_within_limits_is_read_as_a_stream():
    """100 MiB through gzip, counted chunk by chunk: memory stays flat."""
    data = make.gzip_bomb(100)
    with measured() as cost:
        accepted(data, GZIP, limits(max_ratio=10_000, max_expanded_bytes=200 * MIB))
    assert cost["rss_growth_mib"] < 16, cost


# Entry count


def test_the_entry_count_is_refused_before_any_data_is_read():
    damaged_data = make.zip_with_entries(11, garbage_data=True)
    assert refusal(damaged_data, archive_limits=limits(max_entries=10)) == (
        "The archive holds more than 10 entries, the most this upload accepts."
    )
    accepted(make.zip_with_entries(10), archive_limits=limits(max_entries=10))


def test_tar_entries_are_counted_as_they_come():
    data = make.tar_with_files([f"f{i}.txt" for i in range(11)], b"")
    assert refusal(data, TAR, limits(max_entries=10)) == (
        "The archive holds more than 10 entries, the most this upload accepts."
    )
    accepted(data, TAR, limits(max_entries=11))


def test_entries_of_archives_inside_count_toward_the_limit():
    inner = make.zip_with_entries(6)
    data = make.zip_of([("inner.zip", inner), *[(f"outer{i}.txt", b"x") for i in range(4)]])
    detail = refusal(data, archive_limits=limits(max_entries=10, max_depth=1))
    assert detail == (
        "The archive holds more than 10 entries (counting the entries of archives inside it), "
        "the most this upload accepts."
    )
    accepted(data, archive_limits=limits(max_entries=11, max_depth=1))


# Names

OUTSIDE = "points outside the archive."
ABSOLUTE = "has an absolute path, which points outside the archive."
CONTROL = "has control or text-direction characters in its name."
BAD_NAMES = [
    ("../evil.sh", OUTSIDE),
    ("a/../../b", OUTSIDE),
    ("..\\..\\evil.bat", OUTSIDE),
    ("docs/.../x", OUTSIDE),
    ("/etc/cron.d/x", ABSOLUTE),
    ("\\windows\\x", ABSOLUTE),
    ("C:\\x", ABSOLUTE),
    ("C:x", ABSOLUTE),
    ("a\x1bb", CONTROL),
    ("invoice\u202egnp.exe", CONTROL),
]


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES)
def test_zip_entries_with_unsafe_names_are_refused(name, problem):
    shown = archives._shown(name)
    assert refusal(make.zip_with_name(name)) == f'The entry "{shown}" {problem}'


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES)
def test_tar_members_with_unsafe_names_are_refused(name, problem):
    shown = archives._shown(name)
    assert refusal(make.tar_with_files([name]), TAR) == f'The entry "{shown}" {problem}'


def test_a_nul_in_a_zip_name_is_refused_though_zipfile_hides_it():
    data = make.zip_with_name("evil.sh\x00.txt")
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["evil.sh"]
    assert refusal(data) == f'The entry "evil.sh\N{REPLACEMENT CHARACTER}.txt" {CONTROL}'


def test_long_names_are_shown_shortened():
    name = "a" * 300 + "/../x"
    detail = refusal(make.zip_with_name(name))
    assert detail == f'The entry "{"a" * 79}\N{HORIZONTAL ELLIPSIS}" {OUTSIDE}'


def test_duplicate_names_are_refused():
    twice = 'The archive holds "{}" twice; tools differ on which copy they keep, so such archives '
    twice += "are not accepted."
    assert refusal(make.zip_of([("a.txt", b"1"), ("a.txt", b"2")])) == twice.format("a.txt")
    assert refusal(make.zip_of([("d/a.txt", b"1"), ("d\\a.txt", b"2")])) == twice.format("d\\a.txt")
    assert refusal(make.tar_with_files(["a.txt", "./a.txt"]), TAR) == twice.format("./a.txt")
    accepted(make.zip_of([("a.txt", b"1"), ("A.txt", b"2")]))


# Links, devices, encryption, methods

LINK = "is a link; links in archives can point outside them, so they are not accepted."


def test_a_zip_symlink_is_refused():
    assert refusal(make.zip_with_mode(0o120777)) == f'The entry "link" {LINK}'


def test_a_zip_fifo_is_refused():
    assert refusal(make.zip_with_mode(0o010644, name="pipe")) == (
        'The entry "pipe" is a device file, FIFO or socket, which archives uploaded here may '
        "not hold."
    )
    accepted(make.zip_with_mode(0o100644, name="plain.txt", data=make.TEXT))


@pytest.mark.parametrize(
    ("build", "detail"),
    [
        (make.tar_with_symlink, f'The entry "link" {LINK}'),
        (make.tar_with_hardlink, f'The entry "link" {LINK}'),
        (
            make.tar_with_device,
            'The entry "sda" is a device file, which archives uploaded here may not hold.',
        ),
        (
            make.tar_with_fifo,
            'The entry "pipe" is a FIFO (named pipe), which archives uploaded here may not hold.',
        ),
        (make.gnu_sparse_tar, 'The entry "disk.img" is a sparse file, which cannot be checked.'),
    ],
    ids=["symlink", "hardlink", "device", "fifo", "sparse"],
)
def test_tar_links_devices_and_sparse_files_are_refused(build, detail):
    assert refusal(build(), TAR) == detail


ENCRYPTED = (
    'The entry "secret.txt" is encrypted; encrypted archives cannot be checked, so they are not '
    "accepted."
)


@pytest.mark.parametrize("where", [("local", "central"), ("central",), ("local",)])
def test_encrypted_zip_entries_are_refused(where):
    data = make.encrypted_zip(where)
    assert refusal(data) == ENCRYPTED


def test_aes_encrypted_zip_entries_are_refused():
    assert refusal(make.aes_zip()) == ENCRYPTED


def test_unsupported_compression_methods_are_refused():
    data = make.zip_of([("a.txt", make.TEXT)], method=zipfile.ZIP_LZMA)
    assert refusal(data) == (
        'The entry "a.txt" uses a compression method (LZMA, 14) that cannot be checked; this '
        "upload accepts entries stored, deflated or compressed with bzip2."
    )


# Nesting

ONE_LEVEL = "this upload does not accept archives inside archives."


def test_a_zip_in_a_zip_needs_a_depth_of_one():
    data = make.nested_zip(1)
    assert refusal(data) == (
        f'The archive holds another archive ("level1.zip", ZIP archive); {ONE_LEVEL}'
    )
    accepted(data, archive_limits=limits(max_depth=1))


def test_a_zip_in_a_zip_in_a_zip_needs_a_depth_of_two():
    data = make.nested_zip(2)
    assert refusal(data, archive_limits=limits(max_depth=1)) == (
        'The archive holds archives nested more than 1 level deep ("level1.zip" in "level2.zip", '
        "ZIP archive); this upload accepts at most 1."
    )
    accepted(data, archive_limits=limits(max_depth=2))


def test_an_office_document_in_a_zip_is_an_archive_inside():
    data = make.zip_of([("report.docx", make.docx())])
    assert (
        refusal(data)
        == f'The archive holds another archive ("report.docx", Word document); {ONE_LEVEL}'
    )
    accepted(data, archive_limits=limits(max_depth=1))


@pytest.mark.parametrize(
    ("outer", "mime"),
    [
        (lambda inner: make.zip_of([("inner.tar", inner)]), ZIP),
        (lambda inner: make.zip_of([("inner.tgz", make.gzip_of(inner))]), ZIP),
        (lambda inner: make.tar_of([(make.member("inner.tar"), inner)]), TAR),
        (lambda inner: make.gzip_of(make.zip_of([("inner.tar", inner)])), GZIP),
    ],
    ids=["tar-in-zip", "tgz-in-zip", "tar-in-tar", "tar-in-zip-in-gzip"],
)
def test_entries_inside_nested_archives_meet_the_same_rules(outer, mime):
    data = outer(make.tar_with_symlink())
    detail = refusal(data, mime, limits(max_depth=2))
    assert detail.startswith('The entry "link" in "inner.t')
    assert detail.endswith(LINK)
    accepted(outer(make.normal_tar()), mime, limits(max_depth=2))


def test_a_gzip_holding_a_zip_is_an_archive_inside():
    data = make.gzip_of(make.normal_zip(), "inner.zip")
    assert refusal(data, GZIP) == (
        f'The archive holds another archive ("inner.zip", ZIP archive); {ONE_LEVEL}'
    )
    accepted(data, GZIP, limits(max_depth=1))


def test_archives_that_cannot_be_checked_are_refused_inside():
    seven_zip = b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(100)
    data = make.zip_of([("x.7z", seven_zip)])
    assert refusal(data, archive_limits=limits(max_depth=3)) == (
        'The archive holds another archive ("x.7z", application/x-7z-compressed) whose contents '
        "cannot be checked, so it is not accepted."
    )


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (bz2.compress(make.TEXT), "application/x-bzip2"),
        (lzma.compress(make.TEXT), "application/x-xz"),
        (b"Rar!\x1a\x07\x01\x00" + bytes(100), "application/x-rar"),
        (b"!<arch>\nhello.o/        " + bytes(100), "application/x-archive"),
        (b"\x28\xb5\x2f\xfd" + bytes(100), "application/zstd"),
    ],
    ids=["bzip2", "xz", "rar", "ar", "zstd"],
)
def test_other_archive_kinds_are_known_by_their_signature(data, mime):
    assert magic.from_buffer(data, mime=True) == mime  # the signature libmagic knows them by
    detail = refusal(make.zip_of([("inner", data)]), archive_limits=limits(max_depth=1))
    assert detail == (
        f'The archive holds another archive ("inner", {mime}) whose contents cannot be checked, '
        "so it is not accepted."
    )


def test_an_old_tar_without_magic_is_an_archive_inside():
    old = make.old_tar()
    with tarfile.open(fileobj=io.BytesIO(old)) as archive:
        assert archive.getnames() == ["old.txt"]
    assert refusal(make.zip_of([("old.tar", old)])) == (
        f'The archive holds another archive ("old.tar", TAR archive); {ONE_LEVEL}'
    )
    assert refusal(
        make.zip_of([("old.tar", make.old_tar("../x"))]), archive_limits=limits(max_depth=1)
    ) == ('The entry "../x" in "old.tar" points outside the archive.')
    accepted(make.zip_of([("notes.txt", make.TEXT * 20)]))


def test_a_nested_zip_over_the_memory_cap_is_refused(monkeypatch):
    monkeypatch.setattr(archives, "NESTED_ZIP_MAX_BYTES", 1000)
    data = make.nested_zip(1, inner=make.zip_of([("a.bin", bytes(5000))], method=0))
    assert refusal(data, archive_limits=limits(max_depth=1)) == (
        'The archive holds a ZIP archive ("level1.zip", ZIP archive) larger than 1000 bytes, the '
        "most that can be checked inside another archive."
    )


def test_a_damaged_archive_inside_is_named():
    data = make.zip_of([("inner.zip", make.normal_zip()[:-30])])
    assert refusal(data, archive_limits=limits(max_depth=1)) == (
        'The archive inside it ("inner.zip") could not be read: it is damaged or truncated.'
    )


# Damage

UNREADABLE = "The archive could not be read: it is damaged or truncated."


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (make.normal_zip()[:200], ZIP),
        (make.normal_zip()[:-10], ZIP),
        (b"PK\x03\x04" + bytes(100), ZIP),
        (make.normal_tar()[:700], TAR),
        (make.normal_tar_gz()[:100], GZIP),
        (make.normal_tar_gz()[:-4], GZIP),
        (make.gzip_of(make.TEXT) + b"trailing garbage", GZIP),
        (make.tar_with_damaged_header_then("../evil.sh"), TAR),
    ],
    ids=[
        "zip-cut",
        "zip-no-end",
        "zip-header-only",
        "tar-cut",
        "tgz-cut",
        "gzip-no-trailer",
        "gzip-junk",
        "tar-bad-header",
    ],
)
def test_damaged_archives_are_refused(data, mime):
    assert refusal(data, mime) == UNREADABLE


def test_a_tar_with_data_after_its_end_is_refused():
    assert refusal(make.tar_with_data_after_end(), TAR) == (
        "The archive is damaged: something follows its end marker, so it is not accepted."
    )


def test_a_zip_failing_its_checksum_is_refused():
    assert refusal(make.crc_mismatch_zip()) == (
        'The entry "a.txt" does not match its size or checksum; the archive is damaged, so it is '
        "not accepted."
    )


def test_overlapping_zip_entries_are_refused():
    assert refusal(make.overlapping_zip()) == (
        "The archive is damaged: its entries overlap or leave bytes its directory does not list, "
        "so it is not accepted."
    )


def test_an_entry_hidden_from_the_directory_is_refused():
    data = make.zip_hiding_an_entry()
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["a.txt"]
    assert refusal(data) == (
        'The archive is damaged: around the entry "a.txt" its entries overlap or leave bytes its '
        "directory does not list, so it is not accepted."
    )


def test_bytes_after_an_entrys_compressed_stream_are_refused():
    data = make.zip_with_trailing_bytes_in_entry()
    assert zipfile.ZipFile(io.BytesIO(data)).read("a.txt") == make.TEXT
    assert refusal(data) == (
        'The entry "a.txt" does not match its size or checksum; the archive is damaged, so it is '
        "not accepted."
    )


def test_a_huge_tar_extended_header_is_refused_unread():
    assert refusal(make.tar_with_big_pax_header(2 * MIB), TAR) == (
        "The archive holds an extended header of 2 MiB; at most 1 MiB can be checked."
    )
    accepted(make.tar_with_big_pax_header(1000), TAR)


# In the sandbox, as the pipeline runs it


def test_inspection_runs_in_the_sandbox_on_a_real_file(zip_bomb):
    run_limits = sandbox.Limits.of(cpu_seconds=10, memory_bytes=256 * MIB)
    with tempfile.TemporaryFile() as good, tempfile.TemporaryFile() as bomb:
        good.write(make.normal_zip())
        bomb.write(zip_bomb)
        for file in (good, bomb):
            file.flush()
            file.seek(0)
        assert sandbox.run(inspect_archive, good, ZIP, DEFAULTS, limits=run_limits) is None
        with pytest.raises(UploadRejected) as caught:
            sandbox.run(inspect_archive, bomb, ZIP, DEFAULTS, limits=run_limits)
        assert caught.value.code == "archive_rejected"
        assert caught.value.detail.startswith('The entry "bomb.txt" expands')
        assert good.tell() == 0


def test_tarfile_still_calls_the_strict_header_reader():
    """The strict reading hooks TarInfo.fromtarfile; a TAR with a broken second header proves
    the hook is in use (plain tarfile lists the first member and stops quietly)."""
    data = make.tar_with_damaged_header_then("second.txt")
    with tarfile.open(fileobj=io.BytesIO(data)) as plain:
        assert plain.getnames() == ["a.txt"]
    assert refusal(data, TAR) == UNREADABLE


def test_an_entry_offset_past_any_file_position_is_damage():
    assert "damaged" in refusal(make.crafted_offset_zip())
