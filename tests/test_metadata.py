import numpy as np
import pytest

from tests.conftest import shared_path
from tfmood import metadata
from tfmood.tags import NUM_TAGS, TAGS, tag_index


def test_tag_list_matches_mtg_file():
    lines = shared_path("jamendo", "data", "tags", "moodtheme_split.txt").read_text().split()
    assert tuple(line.split("---", 1)[1] for line in lines) == TAGS
    assert NUM_TAGS == 56


def test_tag_index_accepts_prefix_and_rejects_unknown():
    assert tag_index("mood/theme---happy") == tag_index("happy") == TAGS.index("happy")
    with pytest.raises(KeyError, match="horror"):
        tag_index("horror")


@pytest.mark.parametrize("split,count", [("train", 9949), ("validation", 3802), ("test", 4231)])
def test_reads_real_split0_files(split, count):
    path = shared_path("jamendo", "data", "splits", "split-0", f"autotagging_moodtheme-{split}.tsv")
    assert b"\r\n" in path.read_bytes()[:200]  # the real files are CRLF
    tracks = metadata.read_split(str(path))
    assert len(tracks) == count
    assert all(1 <= len(t.tags) <= 8 for t in tracks)
    assert {t for track in tracks for t in track.tags} == set(TAGS)  # every split has all 56 tags
    first = tracks[0]
    assert first.path == f"{first.track_id % 100:02d}/{first.track_id}.mp3"


def test_label_matrix_equals_official_groundtruth():
    tracks = metadata.read_split(str(shared_path("jamendo", "data", "splits", "split-0",
                                                 "autotagging_moodtheme-test.tsv")))
    gt = np.load(shared_path("jamendo", "results", "groundtruth.npy"))
    np.testing.assert_array_equal(metadata.label_matrix(tracks), gt)


def test_parses_crlf_variable_tag_columns_and_zero_padded_ids(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_bytes(b"TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\r\n"
                     b"track_0000948\tartist_000087\talbum_000149\t48/948.mp3\t212.7\tmood/theme---background\r\n"
                     b"track_0001234\tartist_1\talbum_2\t34/1234.mp3\t30.0\tmood/theme---happy\tmood/theme---sad"
                     b"\tmood/theme---film\r\n")
    a, b = metadata.read_split(str(path))
    assert (a.track_id, a.path, a.duration, a.tags) == (948, "48/948.mp3", 212.7, ("background",))
    assert b.tags == ("happy", "sad", "film") and b.name == "track_0001234"
    assert a.feature_path("/mel") == "/mel/48/948.npy"
    assert b.label_vector().sum() == 3


def test_bad_rows_name_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
                    "track_0000001\ta\tb\t01/1.mp3\t10.0\tmood/theme---notatag\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2: .*notatag"):
        metadata.read_split(str(path))
    path.write_text("wrong header\n")
    with pytest.raises(ValueError, match="header"):
        metadata.read_split(str(path))


def test_write_split_round_trips_in_mtg_format(tmp_path):
    tracks = [metadata.Track(5, "artist_1", "album_1", "05/5.mp3", 31.5, ("calm", "sad"))]
    path = tmp_path / "out.tsv"
    metadata.write_split(str(path), tracks)
    assert path.read_bytes().count(b"\r\n") == 2
    assert metadata.read_split(str(path)) == tracks


def test_encoding_problems_name_file_and_line(tmp_path):
    header = b"TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\r\n"
    row = b"track_0000001\tartist_1\talbum_1\t01/1.mp3\t10.0\tmood/theme---calm\r\n"
    path = tmp_path / "latin.tsv"
    path.write_bytes(header + row + row.replace(b"artist_1", b"artist_\xe9"))
    with pytest.raises(ValueError, match=r"latin.tsv:3: not UTF-8 text \(byte 0xe9"):
        metadata.read_split(str(path))
    path.write_bytes(b"\xef\xbb\xbf" + header + row)  # a UTF-8 byte-order mark, as some editors save
    assert [t.track_id for t in metadata.read_split(str(path))] == [1]


@pytest.mark.parametrize("bad", ["../1.mp3", "01/../../1.mp3", "/etc/1.mp3", "C:/1.mp3", "..\\1.mp3", ""])
def test_paths_must_stay_inside_the_root(tmp_path, bad):
    path = tmp_path / "escape.tsv"
    path.write_text("TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
                    f"track_0000001\ta\tb\t{bad}\t10.0\tmood/theme---calm\n")
    with pytest.raises(ValueError, match=r"escape.tsv:2: PATH .* must be a relative path inside"):
        metadata.read_split(str(path))
