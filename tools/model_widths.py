#!/usr/bin/env python3
"""Which widths of real models QuaRot/Quark and libquarot can rotate.

    python3 tools/model_widths.py [path/to/libquarot.so]

Prints the markdown table of README.md ("Real models"). libquarot's answers come from the
library itself (quarot_hadamard_size_supported, quarot_hadamard_block_size through ctypes;
default target/release/libquarot.so); QuaRot's / Quark's from their rule (the first K of
172, 156, 140, 108, 60, 52, 36, 28, 40, 20, 12 with n % K == 0 and n / K a power of two, or
n a power of two). Model dimensions: from the sources listed at the end of the output.
"""
import ctypes
import os
import sys

LG = "litgpt `config.py` @0006c97"  # Lightning-AI/litgpt litgpt/config.py, commit 0006c973aa7d
HF = "HF config.json"

# (model, hidden, head_dim, intermediate (dense MLP or per-expert), note, source)
MODELS = [
    ("Llama 2 7B", 4096, 128, 11008, "", "1"),
    ("Llama 2 13B", 5120, 128, 13824, "", "2"),
    ("Llama 2 70B", 8192, 128, 28672, "", "3"),
    ("Llama 3 / 3.1 8B", 4096, 128, 14336, "", "4"),
    ("Llama 3 / 3.1 70B", 8192, 128, 28672, "", "5"),
    ("Llama 3.1 405B", 16384, 128, 53248, "", "L"),
    ("Llama 3.2 1B", 2048, 64, 8192, "", "L"),
    ("Llama 3.2 3B", 3072, 128, 8192, "", "L"),
    ("Mistral 7B v0.1 / v0.3", 4096, 128, 14336, "", "L"),
    ("Mixtral 8x7B", 4096, 128, 14336, "per expert", "6"),
    ("Mixtral 8x22B", 6144, 128, 16384, "per expert", "7"),
    ("Mistral Nemo 12B", 5120, 128, 14336, "", "8"),
    ("Qwen2 / Qwen2.5 0.5B", 896, 64, 4864, "", "9"),
    ("Qwen2 / Qwen2.5 1.5B", 1536, 128, 8960, "", "10"),
    ("Qwen2.5 3B", 2048, 128, 11008, "", "11"),
    ("Qwen2 / Qwen2.5 7B", 3584, 128, 18944, "", "12"),
    ("Qwen2.5 14B", 5120, 128, 13824, "", "L"),
    ("Qwen2.5 32B", 5120, 128, 27648, "", "13"),
    ("Qwen2 / Qwen2.5 72B", 8192, 128, 29568, "", "14"),
    ("Qwen3 0.6B", 1024, 128, 3072, "", "15"),
    ("Qwen3 1.7B", 2048, 128, 6144, "", "L"),
    ("Qwen3 4B", 2560, 128, 9728, "", "16"),
    ("Qwen3 8B", 4096, 128, 12288, "", "17"),
    ("Qwen3 14B", 5120, 128, 17408, "", "L"),
    ("Qwen3 32B", 5120, 128, 25600, "", "18"),
    ("Qwen3-30B-A3B", 2048, 128, 768, "per expert", "19"),
    ("Qwen3-235B-A22B", 4096, 128, 1536, "per expert", "20"),
    ("Gemma 2B", 2048, 256, 16384, "", "21"),
    ("Gemma 7B", 3072, 256, 24576, "", "22"),
    ("Gemma 2 2B", 2304, 256, 9216, "", "23"),
    ("Gemma 2 9B", 3584, 256, 14336, "", "24"),
    ("Gemma 2 27B", 4608, 128, 36864, "", "L"),
    ("Gemma 3 1B", 1152, 256, 6912, "", "L"),
    ("Gemma 3 4B", 2560, 256, 10240, "", "L"),
    ("Gemma 3 12B", 3840, 256, 15360, "", "L"),
    ("Gemma 3 27B", 5376, 128, 21504, "", "L"),
    ("Phi-3-mini / Phi-3.5-mini", 3072, 96, 8192, "", "L"),
    ("Phi-3-medium", 5120, 128, 17920, "", "25"),
    ("Phi-4 14B", 5120, 128, 17920, "", "L"),
    ("DeepSeek-V2-Lite", 2048, 128, 10944, "dense MLP; below: experts, MLA", "26"),
    ("DeepSeek-V3 / R1", 7168, 128, 18432, "dense MLP; below: experts, MLA", "27"),
    ("SmolLM2 135M", 576, 64, 1536, "", "L"),
    ("SmolLM2 360M", 960, 64, 2560, "", "L"),
    ("SmolLM2 1.7B", 2048, 64, 8192, "", "L"),
    ("GLM-4 9B", 4096, 128, 13696, "", "28"),
    ("Yi 34B", 7168, 128, 20480, "", "29"),
    ("Baichuan2 13B", 5120, 128, 13696, "", "30"),
    ("InternLM2 7B", 4096, 128, 14336, "", "31"),
    ("InternLM2 20B", 6144, 128, 16384, "", "32"),
    ("OLMo 2 7B", 4096, 128, 11008, "", "L"),
]
EXTRA = [  # MoE expert widths and MLA head widths (not columns of their own)
    ("DeepSeek-V2-Lite expert", 1408),
    ("DeepSeek-V3 expert", 2048),
    ("DeepSeek-V2-Lite / V3 MLA head widths (qk_nope and v 128, rope 64)", 128),
    ("DeepSeek MLA rope part", 64),
]

SOURCES = {
    "L": "litgpt `litgpt/config.py` (Lightning-AI/litgpt @ 0006c973aa7d), which re-types each model's HF config",
    "1": "huggingface.co/philschmid/Llama-2-7b-hf config.json (copy of meta-llama/Llama-2-7b-hf)",
    "2": "huggingface.co/LoftQ/Llama-2-13b-hf-4bit-64rank config.json (_name_or_path meta-llama/Llama-2-13b-hf)",
    "3": "huggingface.co/TheBloke/Llama-2-70B-fp16 config.json",
    "4": "huggingface.co/pandyamarut/Meta-Llama-3-8B config.json; litgpt agrees for 3.1",
    "5": "huggingface.co/kittn/Meta-Llama-3-70B-quant config.json; litgpt agrees for 3.1",
    "6": "huggingface.co/mistralai/Mixtral-8x7B-Instruct-v0.1 config.json",
    "7": "huggingface.co/mistral-community/Mixtral-8x22B-v0.1 config.json",
    "8": "config.json of Mistral-Nemo-Instruct-2407 fine-tunes (riple-saanvi-lab/Saanvi-C0-12B, yuyouyu/Mistral-Nemo-BD-RP); explicit head_dim 128",
    "9": "huggingface.co/chgk13/Qwen2-0.5B-openvino (Qwen/Qwen2-0.5B); osllmai-community/Qwen2.5-0.5B; litgpt",
    "10": "huggingface.co/glouriousgautam/Qwen2-1.5b-oasstguanaco-qdora-merged (Qwen/Qwen2-1.5B); onnx-community/Qwen2.5-1.5B-Instruct",
    "11": "huggingface.co/unsloth/Qwen2.5-3B config.json; litgpt",
    "12": "huggingface.co/Qwen/Qwen2-7B config.json; osllmai-community/Qwen2.5-7B-Instruct",
    "13": "huggingface.co/TeamDelta/Re-ultiima-32B config.json (Qwen2.5-32B); litgpt",
    "14": "huggingface.co/Qwen/Qwen2-72B config.json; BitStack/BitStack-Qwen2.5-72B",
    "15": "huggingface.co/TensorStack/TextEncoder Qwen-3-06B/config.json; litgpt (explicit head_dim 128)",
    "16": "huggingface.co/MultiRL/qwen3_4b_instruct_sft config.json; litgpt (explicit head_dim 128)",
    "17": "huggingface.co/thejaminator/qwen-hook-layer-9 (config.json copied from Qwen/Qwen3-8B)",
    "18": "litgpt; huggingface.co/ronnywebdevs1/d-m-1 config.json (explicit head_dim 128)",
    "19": "litgpt; gitcode.com/Ascend/MindSpeed-RL configs/model/qwen3_30b_a3b.yaml (moe_intermediate_size 768)",
    "20": "litgpt; gitcode.com/Ascend/MindSpeed-RL configs/model/qwen3_235b_a22b.yaml (moe_intermediate_size 1536)",
    "21": "huggingface.co/suriya7/Gemma-2B-Finetuned-Python-Model config.json (google/gemma-2b); litgpt",
    "22": "huggingface.co/juhwanlee/gemma-7B-alpaca-case-0-2 config.json (google/gemma-7b); litgpt",
    "23": "huggingface.co/kemura/gemma-2b-sql-finetuned config.json (google/gemma-2-2b); litgpt",
    "24": "litgpt; huggingface.co/prithivMLmods/GWQ-9B-Preview config.json",
    "25": "huggingface.co/microsoft/Phi-3-medium-4k-instruct config.json",
    "26": "huggingface.co/ModelCloud/DeepSeek-V2-Lite-gptq-4bit config.json; deepseek-ai/DeepSeek-V3 inference/configs/config_16B.json",
    "27": "DeepSeek-V3 inference/configs/config_671B.json (copy: huggingface.co/FILM6912/DeepSeek-V3)",
    "28": "huggingface.co/THUDM/glm-4-9b-chat config.json (ffn_hidden_size 13696, kv_channels 128)",
    "29": "huggingface.co/GreenBitAI/yi-34b-w4a16g32 config.json (01-ai/Yi-34B)",
    "30": "huggingface.co/ChiyuSONG/data-efficient-training-of-LLMs-v1 config.json (Baichuan2-13B-Base)",
    "31": "huggingface.co/internlm/internlm2-chat-7b config.json",
    "32": "huggingface.co/internlm/internlm2-20b config.json",
}

QUAROT_KS = [172, 156, 140, 108, 60, 52, 36, 28, 40, 20, 12]


def quarot_k(n):
    if n & (n - 1) == 0:
        return 1
    return next((k for k in QUAROT_KS if n % k == 0 and (n // k) & (n // k - 1) == 0), None)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "target", "release", "libquarot.so")
    lib = ctypes.CDLL(path)
    lib.quarot_hadamard_size_supported.restype = ctypes.c_size_t
    lib.quarot_hadamard_size_supported.argtypes = [ctypes.c_size_t]
    lib.quarot_hadamard_block_size.restype = ctypes.c_size_t
    lib.quarot_hadamard_block_size.argtypes = [ctypes.c_size_t]

    def cell(n):
        q = quarot_k(n)
        k = lib.quarot_hadamard_size_supported(n)
        quark = "yes (K = %d)" % q if q else "**no**"
        if k:
            how = "" if q else (", SpinQuant's" if k == 44 else ", Paley")
            ours = "yes (K = %d%s)" % (k, how)
        else:
            b = lib.quarot_hadamard_block_size(n)
            ours = "no; block-diagonal %d × %d" % (n // b, b) if b else "no"
        return "%d | %s | %s" % (n, quark, ours)

    print("| model | hidden (R1) | QuaRot/Quark | libquarot | head_dim (R2, R3) | QuaRot/Quark | libquarot "
          "| intermediate (R4) | QuaRot/Quark | libquarot | src |")
    print("|---|---:|---|---|---:|---|---|---:|---|---|---|")
    for name, hidden, head, inter, note, src in MODELS:
        label = name + (" (%s)" % note if note else "")
        print("| %s | %s | %s | %s | %s |" % (label, cell(hidden), cell(head), cell(inter), src))
    print()
    for name, n in EXTRA:
        print("- %s: %s" % (name, cell(n).replace(" | ", ": QuaRot/Quark ", 1).replace(" | ", ", libquarot ")))
    print()
    print("Sources (dimensions as the configs give them; head_dim is the config's explicit `head_dim` "
          "where it has one, else hidden / heads):")
    print()
    for key, text in SOURCES.items():
        print("- %s: %s" % (key, text))


if __name__ == "__main__":
    main()
