#!/usr/bin/env python3
"""Times tiktoken's Llama 3 encoding of a text (one thread, best of 5), the
peer figure beside `llamac tokenize --time` (issue 5's tokenizer speed):

    python3 dev/tokenizer/bench_tiktoken.py llama3-tokenizer.model tinyshakespeare.txt
"""
import base64, sys, time
import tiktoken

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from make_llama3_fixture import PATTERN, SPECIAL  # the same encoding the fixture used


def main():
    ranks = {}
    for line in open(sys.argv[1], "rb"):
        tok, rank = line.split()
        ranks[base64.b64decode(tok)] = int(rank)
    enc = tiktoken.Encoding(name="llama3", pat_str=PATTERN, mergeable_ranks=ranks,
                            special_tokens={s: len(ranks) + i for i, s in enumerate(SPECIAL)})
    text = open(sys.argv[2], encoding="utf-8").read()
    size = len(text.encode("utf-8"))
    best, n = float("inf"), 0
    for _ in range(5):
        t0 = time.perf_counter()
        n = len(enc.encode(text, disallowed_special=()))
        best = min(best, time.perf_counter() - t0)
    print(f"tiktoken {tiktoken.__version__}: {size} bytes -> {n} tokens in {best * 1e3:.1f} ms "
          f"= {size / best / 1e6:.1f} MB/s (best of 5, one thread)")


if __name__ == "__main__":
    main()
