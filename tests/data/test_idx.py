"""zooscope.data.idx.read_idx against IDX files written byte by byte with ``struct``."""

import gzip
import struct

import numpy as np
import pytest

from zooscope.data.idx import read_idx


def _idx_bytes(code: int, shape: tuple[int, ...], fmt: str, values) -> bytes:
    """An IDX file assembled field by field: 0, 0, type code, rank, big-endian uint32 dims, big-endian data."""
    header = struct.pack(">BBBB", 0, 0, code, len(shape)) + b"".join(struct.pack(">I", d) for d in shape)
    return header + b"".join(struct.pack(">" + fmt, v) for v in values)


def test_uint8_rank3_images(tmp_path):
    # two 2x3 images, pixel value = 10 * image + 3 * row + col (hand-checkable)
    values = [10 * i + 3 * r + c for i in range(2) for r in range(2) for c in range(3)]
    path = tmp_path / "images-idx3-ubyte"
    raw = _idx_bytes(0x08, (2, 2, 3), "B", values)
    assert raw[:4] == b"\x00\x00\x08\x03" and raw[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x03"
    path.write_bytes(raw)
    got = read_idx(path)
    expected = np.array([[[0, 1, 2], [3, 4, 5]], [[10, 11, 12], [13, 14, 15]]], dtype=np.uint8)
    assert got.dtype == np.uint8
    assert got.shape == (2, 2, 3)
    np.testing.assert_array_equal(got, expected)


def test_uint8_rank1_labels(tmp_path):
    labels = [9, 0, 0, 3, 255, 7]
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(_idx_bytes(0x08, (6,), "B", labels))
    got = read_idx(path)
    assert got.dtype == np.uint8 and got.shape == (6,)
    assert got.tolist() == labels


def test_int32_big_endian(tmp_path):
    values = [1, -1, 2**31 - 1, -(2**31), 258, -65536]  # 258 = 0x00000102: byte order matters
    path = tmp_path / "ints.idx"
    raw = _idx_bytes(0x0C, (2, 3), "i", values)
    header = 4 + 4 * 2
    assert raw[header + 4 * 4: header + 4 * 5] == b"\x00\x00\x01\x02"  # the 5th value, big-endian
    path.write_bytes(raw)
    got = read_idx(path)
    assert got.shape == (2, 3)
    assert got.dtype == np.int32 and got.dtype.isnative
    assert got.tolist() == [values[:3], values[3:]]


def test_float64_and_int16_codes(tmp_path):
    (tmp_path / "f.idx").write_bytes(_idx_bytes(0x0E, (3,), "d", [0.5, -2.25, 1e300]))
    (tmp_path / "s.idx").write_bytes(_idx_bytes(0x0B, (2,), "h", [-2, 513]))
    assert read_idx(tmp_path / "f.idx").tolist() == [0.5, -2.25, 1e300]
    assert read_idx(tmp_path / "s.idx").tolist() == [-2, 513]


def test_gzip_copy_reads_the_same(tmp_path):
    values = [(7 * k) % 256 for k in range(3 * 4 * 4)]
    raw = _idx_bytes(0x08, (3, 4, 4), "B", values)
    (tmp_path / "imgs-idx3-ubyte").write_bytes(raw)
    (tmp_path / "imgs-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    plain = read_idx(tmp_path / "imgs-idx3-ubyte")
    packed = read_idx(tmp_path / "imgs-idx3-ubyte.gz")
    np.testing.assert_array_equal(packed, plain)
    np.testing.assert_array_equal(packed, np.array(values, np.uint8).reshape(3, 4, 4))


def test_truncated_data_names_the_file(tmp_path):
    raw = _idx_bytes(0x08, (2, 2, 3), "B", range(12))
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="short-idx3-ubyte") as err:
        read_idx(path)
    assert "27" in str(err.value) and "28" in str(err.value)  # has 27 bytes, header says 16 + 12


def test_extra_trailing_bytes_rejected(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(_idx_bytes(0x08, (3,), "B", [1, 2, 3]) + b"\x00")
    with pytest.raises(ValueError, match="long.idx"):
        read_idx(path)


def test_bad_magic_names_the_file(tmp_path):
    raw = bytearray(_idx_bytes(0x08, (2,), "B", [1, 2]))
    raw[0] = 0x1F
    path = tmp_path / "notidx.bin"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"notidx\.bin.*not an IDX file"):
        read_idx(path)


def test_unknown_type_code_names_the_file(tmp_path):
    path = tmp_path / "weird.idx"
    path.write_bytes(_idx_bytes(0x0A, (2,), "B", [1, 2]))
    with pytest.raises(ValueError, match=r"weird\.idx.*0x0a") as err:
        read_idx(path)
    assert "0x08" in str(err.value)  # lists the known codes


def test_truncated_header_names_the_file(tmp_path):
    path = tmp_path / "cut-header-idx3-ubyte"
    path.write_bytes(_idx_bytes(0x08, (2, 2, 3), "B", range(12))[:6])  # magic + half of the first dimension
    with pytest.raises(ValueError, match="cut-header-idx3-ubyte"):
        read_idx(path)
