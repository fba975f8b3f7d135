#!/usr/bin/env python3
"""Writes tests/fixtures/llama3_tiktoken.json: reference Llama 3 token ids made
by OpenAI's tiktoken from Meta's tokenizer.model, for llamac's byte-level BPE
tests. Run where tiktoken is installed (the GPU machine):

    python3 dev/tokenizer/make_llama3_fixture.py MODEL_DIR/llama3-tokenizer.model OUT.json

Each case holds the input bytes (hex) and the ids of
  - "ids":         ordinary text: special-token strings are plain text
                   (encode(..., disallowed_special=()))
  - "ids_special": special tokens recognised (allowed_special="all")
Bytes that are not valid UTF-8 are decoded as Python's errors="replace" does
(each maximal invalid subpart becomes U+FFFD), which is what a str-based
tokenizer sees. No BOS is added. The pattern is the one in Meta's
llama3 tokenizer.py (a fact, restated here)."""
import base64, json, sys
import tiktoken

PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
           r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
           "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
           "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
           "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
SPECIAL += [f"<|reserved_special_token_{i}|>" for i in range(3, 256 - 8)]

TEXTS = [
    "", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", " \n", "\n ", " \t\n \r\n",
    "Hello world", "hello world", "Hello World!", " Hello", "  Hello", "Hello  world  ",
    "The king sat upon the throne, and said nothing.",
    "It's I'm you're we've they'll he'd IT'S I'M YOU'RE WE'VE THEY'LL HE'D don't DON'T",
    "'s 's's ''s a'sb", "3 33 333 3333 33333 123456789 1234567890123 3.14159 -42 1e10 0x1F",
    "1,000,000 and 10.5% of $1,234.56", "\u00e9t\u00e9 na\u00efve caf\u00e9 r\u00e9sum\u00e9 \u00c5ngstr\u00f6m",
    "Gr\u00fc\u00dfe aus M\u00fcnchen! \u00bfQu\u00e9 tal? \u00e7a va",
    "\u4f60\u597d\u4e16\u754c \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \ud55c\uad6d\uc5b4",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u05e2\u05d1\u05e8\u05d9\u05ea \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\U0001f600 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f \U0001f1fa\U0001f1f8",
    "def f(x):\n    return x * 2  # double\n\n\tif x:\n\t\tpass\n",
    "int main(void) { printf(\"%d\\n\", a[i++]); return 0; }",
    "for (i = 0; i < n; i++) {\r\n    s += v[i];\r\n}\r\n",
    "    indented    spaces     between     words    ",
    "trailing spaces   \nnext line\n\n\n  \n", "a\u00a0b\u2003c\u3000d", "!!!???...,,,;;;",
    "<html><body class=\"x\">&amp;</body></html>", "https://example.com/path?q=1&r=2#frag",
    "user@example.com +1 (555) 010-9999", "CamelCaseIdentifier snake_case_name kebab-case",
    "ALL CAPS SHOUTING AND lower case whisper", "Mixed\u0301 combining e\u0301 marks",
    "<|eot_id|> and <|begin_of_text|> inside text", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|not_a_token|> <| eot_id |>", "\u2581 SentencePiece marker \u2581\u2581",
    "Tab\tseparated\tvalues\n1\t2\t3\n", "Line one\r\nLine two\rLine three\n",
    "A" * 300, " " * 100 + "x", "9" * 50, "\U0001f600" * 20,
]
INVALID = [b"\xff", b"abc\xff\xfedef", b"\xc3", b"caf\xc3", b"\xe4\xbd", b"\xed\xa0\x80 surrogate",
           b"\xf5\x80\x80\x80", b"\xc0\xaf overlong", b"ok \x80\x80 cont", b"\xf0\x9f\x98 cut emoji"]


def main():
    path, out = sys.argv[1], sys.argv[2]
    ranks = {}
    for line in open(path, "rb"):
        tok, rank = line.split()
        ranks[base64.b64decode(tok)] = int(rank)
    special = {s: len(ranks) + i for i, s in enumerate(SPECIAL)}
    enc = tiktoken.Encoding(name="llama3", pat_str=PATTERN, mergeable_ranks=ranks,
                            special_tokens=special)
    cases = []
    for raw in [t.encode("utf-8") for t in TEXTS] + INVALID:
        text = raw.decode("utf-8", errors="replace")
        cases.append({"hex": raw.hex(),
                      "ids": enc.encode(text, disallowed_special=()),
                      "ids_special": enc.encode(text, allowed_special="all")})
    doc = {"made_by": f"tiktoken {tiktoken.__version__} from llama3-tokenizer.model; "
                      "dev/tokenizer/make_llama3_fixture.py",
           "n_vocab": enc.n_vocab, "cases": cases}
    with open(out, "w") as f:
        json.dump(doc, f, indent=0)
    print(f"{len(cases)} cases -> {out}")


if __name__ == "__main__":
    main()
