# SPDX-License-Identifier: MIT
"""Read and write ssmd model files (safetensors) with numpy only.

Format (https://github.com/huggingface/safetensors): 8-byte little-endian
header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[begin,end]},
"__metadata__": {str: str}}, then the raw little-endian tensor bytes, offsets
relative to the end of the header.  Tensors are written contiguously in name
order; the header is padded with spaces to a multiple of 8 bytes as the
reference implementation does, so that F32 data is 4-byte aligned.
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"),
           "I32": np.dtype("<i4"), "I64": np.dtype("<i8"), "U8": np.dtype("u1")}


def _bf16_bytes(a):
    """float32 array -> bfloat16 bytes, round to nearest even."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


def bf16_to_f32(raw):
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view("<f4")


def save(path, tensors, metadata=None, dtype="F32"):
    """Write tensors (name -> array-like) and metadata (str -> str).

    dtype: "F32", "F16" or "BF16" for every floating tensor (compute in ssmd is
    always fp32; this only changes storage)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            raw = _bf16_bytes(a)
        else:
            raise ValueError(f"unknown dtype {dtype}")
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def load(path):
    """Return (tensors as float32 numpy arrays, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        raw = data[base + b:base + e]
        if t["dtype"] == "BF16":
            a = bf16_to_f32(raw)
        else:
            a = np.frombuffer(raw, dtype=_DTYPES[t["dtype"]]).astype(np.float32)
        out[name] = a.reshape(t["shape"])
    return out, meta
