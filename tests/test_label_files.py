"""Malformed label files: every reader names the file, the line (1-based, as an editor shows it) and the problem."""
from pathlib import Path

import numpy as np
import pytest

from eat.data import (DIST_COLS, MAX_VOTES, read_aadb, read_ava, read_ava_parts, read_csv_labels, read_flickr_aes,
                      read_pyiqa_ava, read_synthetic, read_tad66k)

VOTES = "1 2 3 4 5 6 7 8 9 10"
AVA1, AVA2 = f"1 100 {VOTES} 1 2 1396\n", f"2 101 {VOTES} 3 4 1396\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
PYIQA = "img_name,MOS,c1,c2,c3,c4,c5,c6,c7,c8,c9,c10,semantic_tag1,semantic_tag2,official split,ILGnet split\n"
FACTORS = "image_id,latent_score,bg_sensitive\n100,5.0,True\n101,6.0,False\n"
VOTE_HEAD = "path," + ",".join(f"n{k}" for k in range(1, 11)) + "\n"
PARTS = "image_id," + ",".join(f"score{k}" for k in range(2, 12)) + ",tag1,tag2,tag3\n"  # the original code's part CSVs
PART1, PART2 = "5,0,0,1,2,3,2,1,0,0,0,1,0,1396\n", "6,1,1,1,1,1,1,1,1,1,1,0,0,1396\n"


def _synthetic(root: Path, ava: str | bytes, factors: str | bytes = FACTORS) -> Path:
    "A synthetic-set folder with the given AVA.txt and factors.csv."
    for name, text in (("AVA.txt", ava), ("factors.csv", factors)):
        (root / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return root


def _parts(folder: Path, bad: Path, part: str):
    "Read three part files, `bad` standing for `part` and good files (other images) for the other two."
    good = {s: folder / f"good_{s}.csv" for s in ("train", "val", "test")}
    for k, (s, f) in enumerate(good.items()): f.write_text(PARTS + f"{100 + k},1,1,1,1,1,1,1,1,1,1,0,0,1\n")
    return read_ava_parts([bad if s == part else f for s, f in good.items()], folder)


# reader name -> (file name, call)
READ = {
    "ava_parts": ("train.csv", lambda p: _parts(p.parent, p, "train")),
    "ava_parts_test": ("test.csv", lambda p: _parts(p.parent, p, "test")),
    "ava": ("AVA.txt", lambda p: read_ava(p, p.parent)),
    "tad66k": ("tad66k.csv", lambda p: read_tad66k(p, p.parent)),
    "aadb": ("aadb.csv", lambda p: read_aadb(p, p.parent)),
    "aadb_txt": ("aadb.txt", lambda p: read_aadb(p, p.parent)),
    "csv": ("labels.csv", lambda p: read_csv_labels(p, p.parent)),
    "flickr_aes": ("ratings.csv", lambda p: read_flickr_aes(p, p.parent)),
    "pyiqa_ava": ("meta_info_AVADataset.csv", lambda p: read_pyiqa_ava(p, p.parent)),
    "synthetic": ("AVA.txt", lambda p: read_synthetic(_synthetic(p.parent, p.read_bytes()))),
    "synthetic_factors": ("factors.csv", lambda p: read_synthetic(_synthetic(p.parent, AVA1 + AVA2, p.read_bytes()))),
}

# case, reader, file content, fragments the message must contain (the file's path is always checked too)
CASES = [
    # AVA.txt
    ("ava short row", "ava", AVA1 + "2 101 1 2 3\n",
     ["line 2 has 5 columns, expected 15", "index image_id n1..n10 tag1 tag2 challenge_id"]),
    ("ava long row", "ava", AVA1 + f"2 101 {VOTES} 3 4 1396 7\n", ["line 2 has 16 columns, expected 15"]),
    ("ava non-number vote", "ava", "1 100 1 2 x 4 5 6 7 8 9 10 1 2 1396\n",
     ["line 1, column n3: 'x' is not a whole number"]),
    ("ava fractional vote", "ava", "1 100 1.5 2 3 4 5 6 7 8 9 10 1 2 1396\n",
     ["line 1, column n1: '1.5' is not a whole"]),
    ("ava negative vote", "ava", AVA1 + "2 101 1 -3 3 4 5 6 7 8 9 10 1 2 1396\n",
     ["line 2, column n2: -3 is negative"]),
    ("ava absurd vote", "ava", "1 100 99999999999 2 3 4 5 6 7 8 9 10 1 2 1396\n",
     ["line 1, column n1: 99999999999 is above 1,000,000"]),
    ("ava absurd total", "ava", f"1 100 {' '.join(['200000'] * 10)} 1 2 1396\n",
     ["line 1: 2000000 votes for one image", f"MAX_VOTES={MAX_VOTES:,}"]),
    ("ava negative tag", "ava", f"1 100 {VOTES} -1 2 1396\n", ["line 1, column tag1: -1 is negative"]),
    ("ava header row", "ava", "index image_id " + " ".join(f"n{k}" for k in range(1, 11)) + " tag1 tag2 c\n" + AVA1,
     ["line 1, column n1: 'n1' is not a whole number"]),
    ("ava commas", "ava", AVA1.replace(" ", ","),
     ["line 1 has 1 column, expected 15", "commas", "separated by spaces"]),
    ("ava tabs with an empty field", "ava", AVA1 + "2\t101\t1\t2\t3\t4\t5\t6\t7\t8\t9\t\t3\t4\t1396\n",
     ["line 2 has 14 columns, expected 15", "tabs"]),
    ("ava duplicate id", "ava", AVA1 + AVA2 + AVA1.replace("1 100", "3 100", 1),
     ["duplicate image ids: 100 appears 2 times (lines 1, 3)", "keep one row per image"]),
    ("ava duplicate after blank lines", "ava", "\n" + AVA1 + "\n\n" + AVA1,
     ["duplicate image ids: 100 appears 2 times (lines 2, 5)"]),
    ("ava empty", "ava", b"", ["is empty (0 bytes)"]),
    ("ava blank", "ava", "\n   \n\t\n", ["is blank", "holds no labels"]),
    ("ava binary", "ava", JPEG, ["is a binary file", "not an image or an archive"]),
    ("ava not utf-8", "ava", AVA1.encode() + b"2 caf\xe9 1 2 3\n", ["line 2: byte 0xe9 is not UTF-8", "re-save"]),
    ("ava utf-16", "ava", AVA1.encode("utf-16"), ["UTF-16", "UTF-8"]),
    # TAD66K
    ("tad66k short row", "tad66k", "image,score\n1.jpg,5\n2.jpg\n", ["line 3 has 1 column, expected 2 (image, score)"]),
    ("tad66k non-number", "tad66k", "image,score\n1.jpg,five\n", ["line 2, column score: 'five' is not a number"]),
    ("tad66k missing score", "tad66k", "image,score\n1.jpg,5\n2.jpg,\n", ["line 3: column score (score) is empty"]),
    ("tad66k absurd score", "tad66k", "image,score\n1.jpg,5\n\n2.jpg,55\n", ["line 4, column score: 55 is above 10",
                                                                             "TAD66K scores lie in 1-10"]),
    ("tad66k negative score", "tad66k", "image,score\n1.jpg,-2\n", ["line 2, column score: -2 is negative"]),
    ("tad66k semicolons", "tad66k", "image;score\n1.jpg;5\n", ["line 1", "separated by semicolons", "comma-separated"]),
    ("tad66k tabs", "tad66k", "image\tscore\n1.jpg\t5\n", ["separated by tabs", "comma-separated"]),
    ("tad66k semicolon row", "tad66k", "image,score\n1.jpg;5\n", ["line 2 has 1 column, expected 2", "semicolons"]),
    ("tad66k header only", "tad66k", "image,score\n", ["has a header (line 1) but no data rows"]),
    ("tad66k empty name", "tad66k", "image,score\n1.jpg,5\n,5\n", ["line 3: column image (image) is empty"]),
    ("tad66k no score column", "tad66k", "image,rating\n1.jpg,5\n", ["no score column", "['image', 'rating']"]),
    ("tad66k duplicate id", "tad66k", "image,score\n1.jpg,5\n2.jpg,4\n1.jpg,6\n",
     ["duplicate image ids: 1 appears 2 times (lines 2, 4)"]),
    ("tad66k empty", "tad66k", b"", ["is empty (0 bytes)"]),
    ("tad66k binary", "tad66k", JPEG, ["is a binary file"]),
    # AADB (attribute CSV and `name score` text)
    ("aadb score above 1", "aadb", "ImageFile,ColorHarmony,score\nfarm1_1.jpg,0.3,1.7\n",
     ["line 2, column score: 1.7 is above 1", "AADB scores lie in 0-1"]),
    ("aadb non-number", "aadb", "ImageFile,score\nfarm1_1.jpg,high\n",
     ["line 2, column score: 'high' is not a number"]),
    ("aadb short row", "aadb", "ImageFile,ColorHarmony,score\nfarm1_1.jpg,0.3\n", ["line 2 has 2 columns, expected 3"]),
    ("aadb duplicate id", "aadb", "ImageFile,score\nfarm1_1.jpg,0.5\nfarm1_1.jpg,0.6\n",
     ["duplicate image ids: farm1_1 appears 2 times (lines 2, 3)"]),
    ("aadb txt short row", "aadb_txt", "farm1_1.jpg 0.5\nfarm1_2.jpg\n",
     ["line 2 has 1 column, expected 2 (name score"]),
    ("aadb txt negative", "aadb_txt", "farm1_1.jpg -0.5\n", ["line 1, column score: -0.5 is negative"]),
    ("aadb blank", "aadb_txt", "\n\n", ["is blank"]),
    ("aadb empty", "aadb", b"", ["is empty (0 bytes)"]),
    # any CSV
    ("csv non-number score", "csv", "path,score\na.jpg,5\nb.jpg,good\n",
     ["line 3, column score: 'good' is not a number"]),
    ("csv infinite score", "csv", "path,score\na.jpg,inf\n", ["line 2, column score: 'inf' is not a finite number"]),
    ("csv negative votes", "csv", VOTE_HEAD + "a.jpg,-1,0,0,0,0,0,0,0,0,4\n", ["line 2, column n1: -1 is negative"]),
    ("csv absurd votes", "csv", VOTE_HEAD + "a.jpg,1e12,0,0,0,0,0,0,0,0,4\n",
     ["line 2, column n1: 1e12 is above 1,000,000"]),
    ("csv short row", "csv", "path,score,extra\na.jpg,5,x\nb.jpg,4\n", ["line 3 has 2 columns, expected 3"]),
    ("csv semicolons", "csv", "path;score\na.jpg;5\n", ["separated by semicolons"]),
    ("csv empty path", "csv", "path,score\n,5\n", ["line 2: column path (path) is empty"]),
    ("csv duplicate path", "csv", "path,score\nx/a.jpg,1\nx/a.jpg,2\n",
     ["duplicate image ids: x/a.jpg appears 2 times (lines 2, 3)"]),
    ("csv duplicate image_id", "csv", "image_id,path,score\n7,a.jpg,1\n7,b.jpg,2\n",
     ["duplicate image ids: 7 appears 2 times"]),
    ("csv blank", "csv", " \n", ["is blank"]),
    # FLICKR-AES per-worker ratings
    ("flickr rating above 5", "flickr_aes", " worker, imagePair, score\nw1, i1.jpg, 3\nw2, i1.jpg, 7\n",
     ["line 3, column score: 7 is above 5", "FLICKR-AES ratings lie in 1-5"]),
    ("flickr non-number", "flickr_aes", "worker,imagePair,score\nw1,i1.jpg,three\n", ["line 2, column score: 'three'"]),
    ("flickr duplicate rating", "flickr_aes", "worker,imagePair,score\nw1,i1.jpg,3\nw2,i1.jpg,3\nw1,i1.jpg,4\n",
     ["worker w1 rated i1.jpg more than once (lines 2, 4)"]),
    ("flickr short row", "flickr_aes", "worker,imagePair,score\nw1,i1.jpg\n", ["line 2 has 2 columns, expected 3"]),
    ("flickr empty", "flickr_aes", b"", ["is empty (0 bytes)"]),
    # pyiqa's meta_info_AVADataset.csv
    ("pyiqa bad split code", "pyiqa_ava", PYIQA + "100.jpg,5.5,1,1,1,1,1,1,1,1,1,1,0,0,5,0\n",
     ["line 2, column official split: '5' is not a split code (0 train, 1 val, 2 test)"]),
    ("pyiqa negative count", "pyiqa_ava", PYIQA + "100.jpg,5.5,1,-1,1,1,1,1,1,1,1,1,0,0,0,0\n",
     ["line 2, column c2: -1 is negative"]),
    ("pyiqa no votes", "pyiqa_ava", PYIQA + "100.jpg,5.5,0,0,0,0,0,0,0,0,0,0,0,0,0,0\n", ["line 2: no votes"]),
    ("pyiqa duplicate", "pyiqa_ava", PYIQA + "100.jpg,5.5,1,1,1,1,1,1,1,1,1,1,0,0,0,0\n" * 2,
     ["duplicate image ids: 100 appears 2 times (lines 2, 3)"]),
    # the original code's part files (image_id,score2..score11,tag1..tag3, one per part)
    ("parts no score11", "ava_parts", PARTS.replace(",score11", "") + "5,0,0,1,2,3,2,1,0,0,1,0,1396\n",
     ["no column score11", "image_id,score2,...,score11"]),
    ("parts non-number vote", "ava_parts", PARTS + PART1 + PART2.replace("6,1,1,1", "6,1,1,x"),
     ["line 3, column score4: 'x' is not a whole number", "score2..score11 count the votes for 1..10"]),
    ("parts negative vote", "ava_parts", PARTS + PART1.replace("5,0,0", "5,0,-2"),
     ["line 2, column score3: -2 is negative"]),
    ("parts no votes", "ava_parts", PARTS + PART2 + "7,0,0,0,0,0,0,0,0,0,0,0,0,1396\n", ["line 3: no votes"]),
    ("parts short row", "ava_parts", PARTS + PART1 + "6,1,1\n", ["line 3 has 3 columns, expected 14"]),
    ("parts negative tag", "ava_parts", PARTS + PART1.replace(",1,0,1396", ",-1,0,1396"),
     ["column tag1: -1 is negative"]),
    ("parts duplicate", "ava_parts", PARTS + PART1 + PART2 + PART1,
     ["line 4: image 5 is already in", "train.csv (line 2)", "each image belongs to one part"]),
    ("parts image in two parts", "ava_parts_test", PARTS + PART1 + "100,1,1,1,1,1,1,1,1,1,1,0,0,1\n",
     ["test.csv, line 3: image 100 is already in", "good_train.csv (line 2)"]),
    ("parts semicolons", "ava_parts", PARTS.replace(",", ";") + PART1.replace(",", ";"), ["separated by semicolons"]),
    ("parts empty", "ava_parts_test", b"", ["is empty (0 bytes)"]),
    # the synthetic set (AVA.txt + factors.csv)
    ("synthetic short row", "synthetic", AVA1 + "2 101 1\n", ["line 2 has 3 columns, expected 15"]),
    ("synthetic binary factors", "synthetic_factors", JPEG, ["factors.csv is a binary file"]),
    ("synthetic duplicate factors", "synthetic_factors", FACTORS + "100,5.0,True\n",
     ["duplicate image ids: 100 appears more than once"]),
]


@pytest.mark.parametrize("case,reader,content,fragments", CASES, ids=[c[0] for c in CASES])
def test_malformed_label_file(tmp_path, case, reader, content, fragments):
    name, read = READ[reader]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError) as e:
        read(path)
    msg = str(e.value)
    assert str(path) in msg, msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"


def test_good_variants_read_alike(tmp_path):
    "Tabs between AVA columns, CRLF line ends, a byte-order mark and blank lines read as the plain file does."
    plain = tmp_path / "plain.txt"
    plain.write_text(AVA1 + AVA2)
    ref = read_ava(plain, tmp_path)
    for name, data in [("tabs.txt", (AVA1 + AVA2).replace(" ", "\t")),
                       ("crlf.txt", (AVA1 + AVA2).replace("\n", "\r\n")),
                       ("blank.txt", "\n" + AVA1 + "\n\n" + AVA2 + "\n\n")]:
        (tmp_path / name).write_text(data, newline="")
        t = read_ava(tmp_path / name, tmp_path)
        assert t.drop(columns="path").equals(ref.drop(columns="path")), name
    (tmp_path / "bom.csv").write_bytes("\ufeffimage,score,theme\r\n1.jpg,5.5,NA\r\n2.jpg,3,food\r\n".encode())
    t = read_tad66k(tmp_path / "bom.csv", tmp_path)
    assert list(t.image_id) == ["1", "2"] and list(t.score) == [5.5, 3.0]
    assert np.isnan(t.theme[0]) and t.theme[1] == "food" and t[DIST_COLS].isna().all().all()
    # quotes take the careful path (Python's csv module); the result matches the quick one
    (tmp_path / "quoted.csv").write_text('image,score,theme\n"1.jpg",5.5,NA\n2.jpg,3,"food, drink"\n')
    q = read_tad66k(tmp_path / "quoted.csv", tmp_path)
    assert list(q.score) == [5.5, 3.0] and np.isnan(q.theme[0]) and q.theme[1] == "food, drink"
    assert q.drop(columns="theme").equals(t.drop(columns="theme"))
