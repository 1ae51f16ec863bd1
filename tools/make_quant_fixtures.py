#!/usr/bin/env python3
"""Writes tiny GPTQ, AWQ and FP8 checkpoints of tests/fixtures/models/tiny-llama (and of
tiny-qwen3-moe, whose experts are quantized one by one as GPTQModel and AutoAWQ write them; the
router stays dense), each beside its reference: the same model with the dequantized weights as
float32 safetensors.

The packing follows the published layouts (AutoGPTQ/GPTQModel, AutoAWQ's GEMM kernel, the FP8
releases of DeepSeek/Qwen and vLLM), written here independently of ferrum's loader, in plain
Python (no numpy or torch, so that CI runs it). Quantization is round-to-nearest per group (the
packing, not GPTQ's error feedback, is what a loader must get right).

    python3 tools/make_quant_fixtures.py OUT_DIR

makes OUT_DIR/<variant>/ and OUT_DIR/<variant>-ref/ for every variant in VARIANTS.
"""
import bisect
import json
import math
import os
import random
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

VARIANTS = {
    # GPTQ as AutoGPTQ writes it by default: act order (g_idx), asymmetric, zeros stored minus one.
    "gptq-g32-actorder": dict(method="gptq", group=32, desc_act=True, sym=False, v1=True),
    # GPTQModel's v2 format, symmetric, one group per row.
    "gptq-gall-sym-v2": dict(method="gptq", group=-1, desc_act=False, sym=True, v1=False),
    # 8-bit GPTQ, act order, zeros stored minus one.
    "gptq8-g32-actorder": dict(method="gptq", bits=8, group=32, desc_act=True, sym=False, v1=True),
    "awq-g64": dict(method="awq", group=64),
    "fp8-tensor": dict(method="fp8", scales="tensor"),
    "fp8-channel": dict(method="fp8", scales="channel"),
    "fp8-block": dict(method="fp8", scales="block", block=(32, 32)),
    # Qwen3-MoE: 8 experts of width 32, one dense layer.
    "moe-gptq-g32": dict(method="gptq", group=32, desc_act=False, sym=False, v1=True, source="tiny-qwen3-moe"),
    "moe-gptq-g32-actorder": dict(method="gptq", group=32, desc_act=True, sym=True, v1=False, source="tiny-qwen3-moe"),
    "moe-awq-g32": dict(method="awq", group=32, source="tiny-qwen3-moe"),
    "moe-fp8-block": dict(method="fp8", scales="block", block=(16, 32), source="tiny-qwen3-moe"),
    # Hostile: one expert's gate_proj left unquantized; one expert's qzeros missing.
    "moe-gptq-mixed": dict(method="gptq", group=32, desc_act=False, sym=False, v1=True, source="tiny-qwen3-moe",
                           dense=("model.layers.0.mlp.experts.3.gate_proj",)),
    "moe-gptq-no-qzeros": dict(method="gptq", group=32, desc_act=False, sym=False, v1=True, source="tiny-qwen3-moe",
                               drop=("model.layers.2.mlp.experts.5.up_proj.qzeros",)),
}


# --- safetensors ---------------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], data[a:b])
    return out


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def floats(dtype, raw):
    if dtype == "F32":
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if dtype == "BF16":
        halves = struct.unpack(f"<{len(raw) // 2}H", raw)
        return [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in halves]
    if dtype == "F16":
        return list(struct.unpack(f"<{len(raw) // 2}e", raw))
    raise ValueError(dtype)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


def pack_f32(values):
    return struct.pack(f"<{len(values)}f", *values)


def pack_u32(values):
    return struct.pack(f"<{len(values)}I", *[v & 0xFFFFFFFF for v in values])


# --- 4-bit GPTQ / AWQ ----------------------------------------------------------------------

def quantize_group(values, sym, bits):
    """Round-to-nearest codes of one group: (f16 scale, zero, codes)."""
    maxq = (1 << bits) - 1
    lo, hi = min(values + [0.0]), max(values + [0.0])
    if sym:
        scale = f16(max(abs(lo), abs(hi)) * 2 / maxq or 1.0)
        zero = (maxq + 1) // 2
    else:
        scale = f16((hi - lo) / maxq or 1.0)
        zero = min(maxq, max(1, round(-lo / scale)))  # >= 1: v1 checkpoints store zero - 1
    codes = [min(maxq, max(0, round(v / scale) + zero)) for v in values]
    return scale, zero, codes


def quantize_int(w, n_rows, k_cols, group, desc_act, sym, bits, rng):
    """Codes [n][k], scales and zeros [groups][n], g_idx [k] (group of each input feature)."""
    g = k_cols if group == -1 else group
    groups = k_cols // g
    order = list(range(k_cols))
    if desc_act:
        rng.shuffle(order)  # the act order: the group of feature k is its rank in `order` / g
    g_idx = [0] * k_cols
    for rank, k in enumerate(order):
        g_idx[k] = rank // g
    members = [[k for k in range(k_cols) if g_idx[k] == j] for j in range(groups)]
    codes = [[0] * k_cols for _ in range(n_rows)]
    scales = [[0.0] * n_rows for _ in range(groups)]
    zeros = [[0] * n_rows for _ in range(groups)]
    for n in range(n_rows):
        for j in range(groups):
            s, z, c = quantize_group([w[n * k_cols + k] for k in members[j]], sym, bits)
            scales[j][n], zeros[j][n] = s, z
            for k, code in zip(members[j], c):
                codes[n][k] = code
    return codes, scales, zeros, g_idx


def dequantize_int(codes, scales, zeros, g_idx, n_rows, k_cols):
    return [f32(f32(scales[g_idx[k]][n]) * (codes[n][k] - zeros[g_idx[k]][n])) for n in range(n_rows) for k in range(k_cols)]


def pack_gptq(codes, scales, zeros, g_idx, n_rows, k_cols, v1, with_g_idx, bits):
    """p = 32 / bits values per int32. qweight I32 [k/p, n]: feature k of column n in bits
    bits*(k%p) of qweight[k/p][n]; qzeros I32 [groups, n/p]: column n's zero (minus one in v1)
    in bits bits*(n%p)."""
    per, mask = 32 // bits, (1 << bits) - 1
    qweight = [0] * (k_cols // per * n_rows)
    for n in range(n_rows):
        for k in range(k_cols):
            qweight[(k // per) * n_rows + n] |= codes[n][k] << (bits * (k % per))
    groups = len(scales)
    qzeros = [0] * (groups * n_rows // per)
    for j in range(groups):
        for n in range(n_rows):
            z = (zeros[j][n] - 1) & mask if v1 else zeros[j][n]
            qzeros[j * (n_rows // per) + n // per] |= z << (bits * (n % per))
    out = {
        "qweight": ("I32", [k_cols // per, n_rows], pack_u32(qweight)),
        "qzeros": ("I32", [groups, n_rows // per], pack_u32(qzeros)),
        "scales": ("F16", [groups, n_rows], struct.pack(f"<{groups * n_rows}e", *[s for row in scales for s in row])),
    }
    if with_g_idx:
        out["g_idx"] = ("I32", [k_cols], pack_u32(g_idx))
    return out


AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # nibble i of a packed int32 holds column 8j + AWQ_ORDER[i]


def pack_awq(codes, scales, zeros, n_rows, k_cols):
    """qweight I32 [k, n/8] and qzeros I32 [groups, n/8], eight columns per int32 in AWQ_ORDER."""
    def pack_rows(value, rows):
        out = [0] * (rows * n_rows // 8)
        for r in range(rows):
            for j in range(n_rows // 8):
                word = 0
                for i, c in enumerate(AWQ_ORDER):
                    word |= value(r, 8 * j + c) << (4 * i)
                out[r * (n_rows // 8) + j] = word
        return out
    groups = len(scales)
    return {
        "qweight": ("I32", [k_cols, n_rows // 8], pack_u32(pack_rows(lambda k, n: codes[n][k], k_cols))),
        "qzeros": ("I32", [groups, n_rows // 8], pack_u32(pack_rows(lambda j, n: zeros[j][n], groups))),
        "scales": ("F16", [groups, n_rows], struct.pack(f"<{groups * n_rows}e", *[s for row in scales for s in row])),
    }


# --- FP8 E4M3 ------------------------------------------------------------------------------

def e4m3_value(code):
    sign = -1.0 if code & 0x80 else 1.0
    e, m = (code >> 3) & 15, code & 7
    return sign * (m / 8 * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))


E4M3_POSITIVE = [e4m3_value(c) for c in range(0x7F)]  # codes 0..0x7e; 0x7f is NaN


def e4m3_encode(x):
    """Nearest E4M3 code (ties to the even code), saturating at 448."""
    a = abs(x)
    i = bisect.bisect_left(E4M3_POSITIVE, a)
    if i >= len(E4M3_POSITIVE):
        code = 0x7E
    elif i > 0 and (a - E4M3_POSITIVE[i - 1] < E4M3_POSITIVE[i] - a or
                    (a - E4M3_POSITIVE[i - 1] == E4M3_POSITIVE[i] - a and (i - 1) % 2 == 0)):
        code = i - 1
    else:
        code = i
    return code | (0x80 if x < 0 else 0)


def quantize_fp8(w, n_rows, k_cols, kind, block):
    br, bc = {"tensor": (n_rows, k_cols), "channel": (1, k_cols), "block": block}[kind]
    srows, scols = -(-n_rows // br), -(-k_cols // bc)
    scales = []
    for i in range(srows):
        for j in range(scols):
            amax = max(abs(w[n * k_cols + k]) for n in range(i * br, min(n_rows, (i + 1) * br))
                       for k in range(j * bc, min(k_cols, (j + 1) * bc)))
            scales.append(f32(amax / 448 if amax > 0 else 1.0))
    codes, deq = [], []
    for n in range(n_rows):
        for k in range(k_cols):
            s = scales[(n // br) * scols + k // bc]
            c = e4m3_encode(w[n * k_cols + k] / s)
            codes.append(c)
            deq.append(f32(e4m3_value(c) * s))
    if kind == "tensor":
        scale = {"weight_scale": ("F32", [], pack_f32(scales))}
    elif kind == "channel":
        scale = {"weight_scale": ("F32", [n_rows, 1], pack_f32(scales))}
    else:
        scale = {"weight_scale_inv": ("F32", [srows, scols], pack_f32(scales))}
    return bytes(codes), scale, deq


# --- variants ------------------------------------------------------------------------------

def quantization_config(v):
    if v["method"] == "gptq":
        return {"quant_method": "gptq", "bits": v.get("bits", 4), "group_size": v["group"], "desc_act": v["desc_act"],
                "sym": v["sym"], "checkpoint_format": "gptq" if v["v1"] else "gptq_v2"}
    if v["method"] == "awq":
        return {"quant_method": "awq", "bits": 4, "group_size": v["group"], "version": "gemm", "zero_point": True}
    c = {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3"}
    if v["scales"] == "block":
        c["weight_block_size"] = list(v["block"])
    return c


def make_variant(out_dir, name, v):
    src = os.path.join(MODELS, v.get("source", "tiny-llama"))
    source = read_safetensors(os.path.join(src, "model.safetensors"))
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    rng = random.Random(name)
    quant, ref = {}, {}
    for tname, (dtype, shape, raw) in source.items():
        module = tname[: -len(".weight")] if tname.endswith(".weight") else None
        if module is None or module.split(".")[-1] not in LINEAR or module in v.get("dense", ()):
            quant[tname] = ref[tname] = (dtype, shape, raw)
            continue
        n_rows, k_cols = shape
        w = floats(dtype, raw)
        if v["method"] == "fp8":
            codes, scale, deq = quantize_fp8(w, n_rows, k_cols, v["scales"], v.get("block"))
            quant[tname] = ("F8_E4M3", shape, codes)
            for suffix, t in scale.items():
                quant[f"{module}.{suffix}"] = t
        else:
            sym, bits = v.get("sym", False), v.get("bits", 4)
            codes, scales, zeros, g_idx = quantize_int(w, n_rows, k_cols, v["group"], v.get("desc_act", False), sym,
                                                       bits, rng)
            deq = dequantize_int(codes, scales, zeros, g_idx, n_rows, k_cols)
            if v["method"] == "gptq":
                packed = pack_gptq(codes, scales, zeros, g_idx, n_rows, k_cols, v["v1"], v["desc_act"], bits)
            else:
                packed = pack_awq(codes, scales, zeros, n_rows, k_cols)
            for suffix, t in packed.items():
                quant[f"{module}.{suffix}"] = t
        ref[tname] = ("F32", shape, pack_f32(deq))
    for name_ in v.get("drop", ()):
        del quant[name_]
    for suffix, tensors, cfg in (("", quant, dict(config, quantization_config=quantization_config(v))),
                                 ("-ref", ref, config)):
        d = os.path.join(out_dir, name + suffix)
        os.makedirs(d, exist_ok=True)
        write_safetensors(os.path.join(d, "model.safetensors"), tensors)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        for extra in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(src, extra), d)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    for name, v in VARIANTS.items():
        make_variant(out_dir, name, v)


if __name__ == "__main__":
    main()
