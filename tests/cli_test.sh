#!/usr/bin/env bash
# End-to-end tests of the llamac command line: golden text from llama2.c,
# reproducible seeds, and a clear one-line error with a non-zero exit for
# every kind of bad input. Usage: tests/cli_test.sh BUILD_DIR
set -u
BUILD=${1:-build}
LLAMAC="$(cd "$BUILD" && pwd)/llamac" # absolute: some tests run from another directory
SHARED=${LLAMAC_SHARED:-../shared}
M="$SHARED/models"
G="$SHARED/golden"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; shift; for line in "$@"; do echo "     $line"; done; }

# expect_ok NAME CMD...: exit 0
expect_ok() {
    local name=$1; shift
    if "$@" >"$TMP/out" 2>"$TMP/err"; then pass "$name"; else fail "$name" "exit $?" "$(head -c 300 "$TMP/err")"; fi
}

# expect_error NAME PATTERN CMD...: a non-zero exit that is not a crash, and
# exactly one stderr line matching PATTERN.
expect_error() {
    local name=$1 pattern=$2; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
    local rc=$?
    local lines
    lines=$(wc -l <"$TMP/err")
    if [ "$rc" -eq 0 ]; then fail "$name" "exit 0, expected an error"
    elif [ "$rc" -ge 128 ]; then fail "$name" "crashed (exit $rc)" "$(head -c 300 "$TMP/err")"
    elif ! grep -qE -- "$pattern" "$TMP/err"; then fail "$name" "stderr lacks /$pattern/:" "$(head -c 300 "$TMP/err")"
    elif [ "$lines" -ne 1 ]; then fail "$name" "expected a one-line error, got $lines lines:" "$(head -c 300 "$TMP/err")"
    else pass "$name"; fi
}

# expect_same NAME FILE CMD...: stdout, without its final newline, equals FILE
expect_same() {
    local name=$1 want=$2; shift 2
    if ! "$@" >"$TMP/out" 2>"$TMP/err"; then fail "$name" "exit $?" "$(head -c 300 "$TMP/err")"; return; fi
    if cmp -s <(head -c -1 "$TMP/out") "$want"; then pass "$name"
    else fail "$name" "output differs from $want:" "$(diff <(head -c -1 "$TMP/out") "$want" | head -5)"; fi
}

# --- llama2.c's own greedy output, byte for byte (run.c's -n counts the prompt:
#     -n 200 with BOS alone generates 200 tokens; with "The king" (3 tokens), 98).
for simd in scalar auto; do
    expect_same "golden stories260K ($simd)" "$G/stories260K.t0.n200.txt" \
        "$LLAMAC" generate -q --simd $simd -m "$M/stories260K.bin" -z "$M/tok512.bin" -t 0 -n 200
    expect_same "golden tiny-gutenberg-15M 'The king' ($simd)" "$G/tiny-gutenberg-15M.t0.n100.the-king.txt" \
        "$LLAMAC" generate -q --simd $simd -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" -t 0 -n 98 -p "The king"
done
expect_same "golden stories260K from the version-1 file" "$G/stories260K.t0.n200.txt" \
    "$LLAMAC" generate -q -m "$M/stories260K_v1.bin" -z "$M/tok512.bin" -t 0 -n 200
expect_same "golden stories260K on 1 thread, batch 1" "$G/stories260K.t0.n200.txt" \
    "$LLAMAC" generate -q --threads 1 --batch 1 -m "$M/stories260K.bin" -z "$M/tok512.bin" -t 0 -n 200
expect_same "golden stories260K from the Hugging Face folder" "$G/stories260K.t0.n200.txt" \
    "$LLAMAC" generate -q -m "$M/stories260K.hf" -z "$M/tok512.bin" -t 0 -n 200
# The int8 export (runq.c's format): runq.c's own greedy text, byte for byte,
# on every kernel set. It needs runq.c's activations (int8 groups of 32,
# scale max|x| / 127, q = round(x / scale)), its order of adding the blocks,
# and its reading of ffn_down's 172-wide rows (whole groups of 32 from each
# row's start, the last 12 values unused; src/formats/llama2c_v2.c).
for simd in scalar auto; do
    expect_same "golden runq.c text from stories260K_q80 ($simd)" "$G/stories260K_q80.t0.n200.runq.txt" \
        "$LLAMAC" generate -q --simd $simd -m "$M/stories260K_q80.bin" -z "$M/tok512.bin" -t 0 -n 200
done
for dt in f16 bf16 q8_0; do
    expect_ok "tiny-gutenberg-15M with --dtype $dt" "$LLAMAC" generate -q --device cpu --dtype $dt -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" -t 0 -n 20 -p "The king"
done
expect_same "golden tiny-gutenberg-15M 'The king' with --dtype f16" "$G/tiny-gutenberg-15M.t0.n100.the-king.txt" \
    "$LLAMAC" generate -q --device cpu --dtype f16 -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" -t 0 -n 98 -p "The king"
for w in mmap copy; do
    expect_same "golden tiny-gutenberg-15M, --weights $w" "$G/tiny-gutenberg-15M.t0.n100.the-king.txt" \
        "$LLAMAC" generate -q --weights $w -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" -t 0 -n 98 -p "The king"
done

# --- GGUF: a converted checkpoint carries its tokenizer and reproduces llama2.c's text (no -z)
expect_ok "quantize stories260K to GGUF f32" "$LLAMAC" quantize -m "$M/stories260K.bin" -z "$M/tok512.bin" -o "$TMP/s260.gguf" --type f32
expect_same "golden stories260K from GGUF f32, no -z" "$G/stories260K.t0.n200.txt" \
    "$LLAMAC" generate -q -m "$TMP/s260.gguf" -t 0 -n 200
if [ ! -e "$TMP/s260.gguf.tmp" ]; then pass "quantize leaves no temp file"; else fail "quantize leaves no temp file"; fi
expect_ok "quantize tiny-gutenberg-15M to GGUF f32" "$LLAMAC" quantize -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" -o "$TMP/g15.gguf" --type f32
expect_same "golden tiny-gutenberg-15M from GGUF f32, no -z" "$G/tiny-gutenberg-15M.t0.n100.the-king.txt" \
    "$LLAMAC" generate -q -m "$TMP/g15.gguf" -t 0 -n 98 -p "The king"
expect_ok "info on a GGUF written by another tool" "$LLAMAC" info -m "$M/llama-2-tiny-random.gguf"
if grep -q "GGUF v3 (f16)" "$TMP/out" && grep -q "dim 8, hidden 32, layers 1, heads 2, kv heads 2, head dim 4, vocab 32000, context 4096" "$TMP/out"; then
    pass "llama-2-tiny-random.gguf config"; else fail "llama-2-tiny-random.gguf config" "$(cat "$TMP/out")"; fi
out=$("$LLAMAC" tokenize -z "$SHARED/tokenizer_tests/ggml-vocab-llama-spm.gguf" "I believe the meaning of life is" 2>&1)
if [ "$out" = "1 306 4658 278 6593 310 2834 338" ]; then pass "tokenize with a GGUF vocabulary"; else fail "tokenize with a GGUF vocabulary" "$out"; fi
expect_ok "quantize stories260K to q4_0" "$LLAMAC" quantize -m "$M/stories260K.bin" -z "$M/tok512.bin" -o "$TMP/s260.q4_0.gguf" --type q4_0
if [ "$(grep -c 'kept f16' "$TMP/err")" -eq 5 ]; then pass "quantize notes the rows kept f16"; else fail "quantize notes the rows kept f16" "$(cat "$TMP/err")"; fi
# A Hugging Face folder (Llama 3: GQA, Llama 3.1 RoPE scaling, byte-level BPE) to q8_0 GGUF:
# its greedy text equals the folder's run with weights quantized to q8_0 at load.
expect_ok "quantize a Hugging Face folder to q8_0" "$LLAMAC" quantize -m "$M/tiny-gutenberg-llama3.hf/" -o "$TMP/l3.q8_0.gguf" --type q8_0
want=$("$LLAMAC" generate -q -m "$M/tiny-gutenberg-llama3.hf" --dtype q8_0 -t 0 -n 20 -p "The king" 2>&1)
got=$("$LLAMAC" generate -q -m "$TMP/l3.q8_0.gguf" -t 0 -n 20 -p "The king" 2>&1)
if [ -n "$want" ] && [ "$got" = "$want" ]; then pass "Llama 3 q8_0 GGUF generates the folder's q8_0 text"
else fail "Llama 3 q8_0 GGUF generates the folder's q8_0 text" "folder: $want / gguf: $got"; fi
rm -f "$TMP/l3.q8_0.gguf"

# --- sampling is reproducible with a seed
"$LLAMAC" generate -q -m "$M/stories260K.bin" -z "$M/tok512.bin" -t 1 --top-p 0.9 -s 7 -n 60 >"$TMP/s1" 2>/dev/null
"$LLAMAC" generate -q -m "$M/stories260K.bin" -z "$M/tok512.bin" -t 1 --top-p 0.9 -s 7 -n 60 >"$TMP/s2" 2>/dev/null
"$LLAMAC" generate -q -m "$M/stories260K.bin" -z "$M/tok512.bin" -t 1 --top-p 0.9 -s 8 -n 60 >"$TMP/s3" 2>/dev/null
if cmp -s "$TMP/s1" "$TMP/s2" && [ -s "$TMP/s1" ]; then pass "same seed, same text"; else fail "same seed, same text"; fi
if ! cmp -s "$TMP/s1" "$TMP/s3"; then pass "different seed, different text"; else fail "different seed, different text"; fi

# --- tokenize
out=$("$LLAMAC" tokenize -z "$M/tokenizer.bin" "I believe the meaning of life is" 2>&1)
if [ "$out" = "1 306 4658 278 6593 310 2834 338" ]; then pass "tokenize: Llama 2 ids"; else fail "tokenize: Llama 2 ids" "$out"; fi
out=$(printf 'Hello world' | "$LLAMAC" tokenize -z "$M/tokenizer.bin" --no-bos -f - 2>&1)
if [ "$out" = "15043 3186" ]; then pass "tokenize: stdin, no BOS"; else fail "tokenize: stdin, no BOS" "$out"; fi
# Llama 3: a Hugging Face folder's tokenizer, and special tokens only with --special
out=$("$LLAMAC" tokenize -m "$M/tiny-gutenberg-llama3.hf" "Hello world" 2>&1)
if [ "$out" = "128000 9906 1917" ]; then pass "tokenize: Llama 3 folder"; else fail "tokenize: Llama 3 folder" "$out"; fi
out=$("$LLAMAC" tokenize -z "$M/llama3-tokenizer.model" --no-bos --special "<|eot_id|>" 2>&1)
if [ "$out" = "128009" ]; then pass "tokenize --special"; else fail "tokenize --special" "$out"; fi
out=$("$LLAMAC" tokenize -z "$M/llama3-tokenizer.model" --no-bos "<|eot_id|>" 2>&1)
if [ "$out" = "27 91 68 354 851 91 29" ]; then pass "tokenize: special-token text is text"; else fail "tokenize: special-token text is text" "$out"; fi
"$LLAMAC" tokenize -z "$M/llama3-tokenizer.model" --count --time "Hello world" >"$TMP/out" 2>"$TMP/err"
if [ "$(cat "$TMP/out")" = "3" ] && grep -qE "11 bytes -> 3 tokens in .* MB/s" "$TMP/err"; then pass "tokenize --time"; else fail "tokenize --time" "$(cat "$TMP/out" "$TMP/err")"; fi
printf '{"model": {"type": "BPE", "vocab": {}}' >"$TMP/tokenizer.json"
expect_error "tokenize: malformed tokenizer.json" "tokenizer.json: the file is not valid JSON" "$LLAMAC" tokenize -z "$TMP/tokenizer.json" "x"

# --- the other subcommands run and produce what they claim
expect_ok "logits writes rows x vocab" "$LLAMAC" logits -m "$M/stories260K.bin" --ids 1,403,407 --out "$TMP/l.f32"
size=$(stat -c %s "$TMP/l.f32" 2>/dev/null || echo 0)
if [ "$size" -eq $((3 * 512 * 4)) ]; then pass "logits file size"; else fail "logits file size" "$size bytes"; fi
expect_ok "bench --json" "$LLAMAC" bench -m "$M/stories260K.bin" -p 32 -n 16 -r 2 --json
if grep -q '"test": "pp32"' "$TMP/out" && grep -q '"test": "tg16"' "$TMP/out"; then pass "bench reports pp and tg"; else fail "bench reports pp and tg" "$(cat "$TMP/out")"; fi
expect_ok "mkmodel stories260K" "$LLAMAC" mkmodel --shape stories260K --out "$TMP/rand.bin"
expect_ok "info on the random model" "$LLAMAC" info -m "$TMP/rand.bin"
if grep -q "dim 64, hidden 172, layers 5, heads 8, kv heads 4" "$TMP/out"; then pass "mkmodel shape"; else fail "mkmodel shape" "$(cat "$TMP/out")"; fi
for cmd in generate chat tokenize bench logits perplexity mkmodel membw info quantize serve; do
    if "$LLAMAC" $cmd --help 2>&1 | grep -q "usage: llamac $cmd"; then pass "$cmd --help"; else fail "$cmd --help"; fi
done

# --- perplexity: the scored-token count follows from the token count that
#     `tokenize` gives (windows: n / ctx of them, ctx-1-ctx/2 scored in each;
#     --per-line: every token of every non-empty line after its BOS); a model
#     against itself has KL 0 and full top-1 agreement.
head -n 30 "$SHARED/corpora/tiny-gutenberg-heldout.txt" >"$TMP/held.txt"
n_tok=$("$LLAMAC" tokenize -z "$M/tokenizer.bin" -f "$TMP/held.txt" | wc -w)
expect_ok "perplexity --json" "$LLAMAC" perplexity -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" -f "$TMP/held.txt" --ctx 64 --json
want=$(( n_tok / 64 * (64 - 1 - 32) ))
if grep -q "\"scored_tokens\": $want," "$TMP/out" && [ "$want" -gt 0 ]; then pass "perplexity: $want scored tokens from $n_tok"; else fail "perplexity: $want scored tokens from $n_tok" "$(cat "$TMP/out")"; fi
printf 'Once upon a time there was a cat.\r\n\r\nThe cat liked milk.\nShe ran to the park.' >"$TMP/lines.txt"
want=0
for line in "Once upon a time there was a cat." "The cat liked milk." "She ran to the park."; do
    want=$(( want + $("$LLAMAC" tokenize -z "$M/tok512.bin" "$line" | wc -w) - 1 ))
done
expect_ok "perplexity --per-line" "$LLAMAC" perplexity -m "$M/stories260K.bin" -z "$M/tok512.bin" -f "$TMP/lines.txt" --per-line
if grep -q "^scored tokens: $want$" "$TMP/out" && grep -q "3 non-empty lines" "$TMP/out"; then pass "perplexity --per-line: $want scored tokens"; else fail "perplexity --per-line: $want scored tokens" "$(cat "$TMP/out")"; fi
expect_ok "perplexity --kl-base itself" "$LLAMAC" perplexity -m "$M/stories260K.bin" -z "$M/tok512.bin" -f "$TMP/lines.txt" --per-line --kl-base "$M/stories260K.bin"
ppl=$(sed -n 's/^PPL = //p' "$TMP/out"); base_ppl=$(sed -n 's/^base PPL = //p' "$TMP/out")
if grep -q "^KL(base || model) = 0.000000 " "$TMP/out" && grep -q "^top-1 agreement = 100.00%" "$TMP/out" && [ -n "$ppl" ] && [ "$ppl" = "$base_ppl" ]; then
    pass "perplexity: a model against itself has KL 0"; else fail "perplexity: a model against itself has KL 0" "$(cat "$TMP/out")"; fi
expect_ok "perplexity --dtype q4_0 against its own f32 file" "$LLAMAC" perplexity --device cpu -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" -f "$TMP/held.txt" --ctx 64 --dtype q4_0 --kl-base "$M/tiny-gutenberg-15M.bin"
if grep -q "^KL(base || model) = 0.0*[1-9]" "$TMP/out" && ! grep -q "^KL(base || model) = 0.000000 " "$TMP/out"; then
    pass "perplexity: the base runs as stored, not in --dtype"; else fail "perplexity: the base runs as stored, not in --dtype" "$(cat "$TMP/out")"; fi
: >"$TMP/empty.txt"
P=(perplexity -m "$M/stories260K.bin" -z "$M/tok512.bin")
expect_error "perplexity: no -f" "need -f" "$LLAMAC" "${P[@]}"
expect_error "perplexity: missing file" "nope.txt.*cannot read" "$LLAMAC" "${P[@]}" -f "$TMP/nope.txt"
expect_error "perplexity: empty file" "empty.txt.*empty" "$LLAMAC" "${P[@]}" -f "$TMP/empty.txt"
expect_error "perplexity: fewer tokens than a window" "fewer than one window of --ctx 512" "$LLAMAC" "${P[@]}" -f "$TMP/lines.txt"
expect_error "perplexity: --ctx 1" "--ctx 1: must be at least 2" "$LLAMAC" "${P[@]}" -f "$TMP/lines.txt" --ctx 1
expect_error "perplexity: --ctx 2 leaves nothing to score" "--ctx 2: standard mode needs at least 3" "$LLAMAC" "${P[@]}" -f "$TMP/lines.txt" --ctx 2
expect_error "perplexity: --ctx beyond the model" "--ctx 4096.*512" "$LLAMAC" "${P[@]}" -f "$TMP/lines.txt" --ctx 4096
expect_error "perplexity: --kl-base with another vocabulary" "kl-base.*32000 tokens.*512" "$LLAMAC" "${P[@]}" -f "$TMP/lines.txt" --kl-base "$M/tiny-gutenberg-15M.bin"

# --- context limits: generation stops cleanly; a prompt that cannot fit is an error
"$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" -t 0 -n -1 --ctx 16 >"$TMP/out" 2>"$TMP/err"
if [ $? -eq 0 ] && grep -q "context full" "$TMP/err"; then pass "generation stops at a full context"; else fail "generation stops at a full context" "$(cat "$TMP/err")"; fi

# --- chat keeps the conversation and says when the context is full
# Turn 2 must extend turn 1's sequence: its context count is turn 1's plus its
# own tokens. A reply's last token joins the cache with the next turn, so each
# count may be one short.
printf 'Hello there.\nWhat is your name?\n' | "$LLAMAC" chat -v -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" \
    --system "You are terse." -t 0 -n 12 >"$TMP/out" 2>"$TMP/err"
rc=$?
read -r p1 r1 c1 p2 r2 c2 <<<"$(sed -nE 's/.*: ([0-9]+) prompt \+ ([0-9]+) reply tokens.*context ([0-9]+)\/.*/\1 \2 \3/p' "$TMP/err" | tr '\n' ' ')"
if [ $rc -eq 0 ] && [ -n "${c2:-}" ] && [ "$c1" -ge $((p1 + r1 - 1)) ] && [ "$c1" -le $((p1 + r1)) ] && [ "$c2" -ge $((c1 + p2 + r2 - 1)) ] && [ "$c2" -le $((c1 + p2 + r2)) ]; then
    pass "chat: the second turn continues the first in the KV cache"
else fail "chat: the second turn continues the first in the KV cache" "$(cat "$TMP/err")"; fi
printf 'one\ntwo\nthree\nfour\nfive\nsix\n' | "$LLAMAC" chat -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" \
    -t 0 -n 10 --ctx 48 >"$TMP/out" 2>"$TMP/err"
if [ $? -eq 0 ] && grep -q "context full" "$TMP/err"; then pass "chat: full context is reported"; else fail "chat: full context is reported" "$(cat "$TMP/err")"; fi

# --- Llama 3 from a Hugging Face folder. transformers' argmax after "<|begin_of_text|>The king"
# is 374 (" is"; golden/logits/tiny-gutenberg-llama3.json), and its chat template renders
# "Who wrote Moby Dick?" with the generation prompt as 16 ids (the golden "chat" sequence).
out=$("$LLAMAC" generate -q -m "$M/tiny-gutenberg-llama3.hf" -p "The king" -t 0 -n 5 2>&1)
case "$out" in "The king is"*) pass "generate: Llama 3 folder, greedy as transformers" ;; *) fail "generate: Llama 3 folder, greedy as transformers" "$out" ;; esac
printf 'Who wrote Moby Dick?\nAnd who is Ahab?\n' | "$LLAMAC" chat -v -m "$M/tiny-gutenberg-llama3.hf" -t 0 -n 8 >"$TMP/out" 2>"$TMP/err"
if [ $? -eq 0 ] && grep -q "turn 1: 16 prompt" "$TMP/err" && grep -q "turn 2:" "$TMP/err"; then
    pass "chat: Llama 3 template as transformers renders it"
else fail "chat: Llama 3 template as transformers renders it" "$(cat "$TMP/err")"; fi
expect_error "chat: unknown --chat-template" "unknown chat template 'chatml'" "$LLAMAC" chat -m "$M/tiny-gutenberg-llama3.hf" --chat-template chatml -p hi
expect_error "serve: --batch below --parallel" "--batch 2 is below --parallel 4" "$LLAMAC" serve -m "$M/stories260K.bin" -z "$M/tok512.bin" --port 0 --parallel 4 --batch 2
expect_error "serve: a port out of range" "--port must be 0 to 65535" "$LLAMAC" serve -m "$M/stories260K.bin" -z "$M/tok512.bin" --port 70000
expect_error "serve: a host name, not an address" "--host localhost: not an IPv4 or IPv6 address" "$LLAMAC" serve -m "$M/stories260K.bin" -z "$M/tok512.bin" --port 0 --host localhost

# --- bad input: a one-line error naming the culprit, a non-zero exit, no crash
head -c 100000 "$M/stories260K.bin" >"$TMP/truncated.bin"
cat "$M/stories260K.bin" "$M/tok512.bin" >"$TMP/oversized.bin"
printf 'garbage that is not a model at all, just text' >"$TMP/garbage.bin"
# Header fields are little-endian int32s at 4 * index: n_heads is field 3, dim field 0.
patch_int32() { # FILE OFFSET BYTES(printf escapes)
    printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
cp "$M/stories260K.bin" "$TMP/baddims.bin"
patch_int32 "$TMP/baddims.bin" 12 '\x07\x00\x00\x00'   # n_heads 7 does not divide dim 64
cp "$M/stories260K.bin" "$TMP/absurd.bin"
patch_int32 "$TMP/absurd.bin" 0 '\x00\x00\x00\x20'     # dim 2^29
A=(-z "$M/tok512.bin" -n 4)
expect_error "truncated model" "truncated.bin.*truncated" "$LLAMAC" generate -m "$TMP/truncated.bin" "${A[@]}"
expect_error "oversized model" "oversized.bin.*size" "$LLAMAC" generate -m "$TMP/oversized.bin" "${A[@]}"
expect_error "not a model" "garbage.bin" "$LLAMAC" generate -m "$TMP/garbage.bin" "${A[@]}"
expect_error "dimensions that disagree" "baddims.bin.*n_heads" "$LLAMAC" generate -m "$TMP/baddims.bin" "${A[@]}"
expect_error "absurd dimensions" "absurd.bin.*dim" "$LLAMAC" generate -m "$TMP/absurd.bin" "${A[@]}"
head -c 5000 "$M/llama-2-tiny-random.gguf" >"$TMP/truncated.gguf"
expect_error "truncated GGUF" "truncated.gguf.*tokenizer.ggml.tokens.*cannot fit" "$LLAMAC" generate -m "$TMP/truncated.gguf" -n 4
expect_error "GGUF vocabulary is not a model" "ggml-vocab-llama-spm.gguf.*token_embd.weight: missing" "$LLAMAC" info -m "$SHARED/tokenizer_tests/ggml-vocab-llama-spm.gguf"
expect_error "quantize: bad --type" "--type q5_k: expected f32, f16, bf16, q8_0 or q4_0" "$LLAMAC" quantize -m "$M/stories260K.bin" -z "$M/tok512.bin" -o "$TMP/x.gguf" --type q5_k
expect_error "quantize: missing input" "nope.bin.*cannot open" "$LLAMAC" quantize -m "$TMP/nope.bin" -z "$M/tok512.bin" -o "$TMP/x.gguf" --type f32
expect_error "quantize: unwritable output" "/nonexistent/x.gguf.tmp: cannot create" "$LLAMAC" quantize -m "$M/stories260K.bin" -z "$M/tok512.bin" -o /nonexistent/x.gguf --type f32
expect_error "quantize: llama2.c input without a tokenizer" "holds no tokenizer.*-z" "$LLAMAC" quantize -m "$M/stories260K.bin" -o "$TMP/x.gguf" --type f32
expect_error "quantize: tokenizer of another size" "512 tokens" "$LLAMAC" quantize -m "$M/tiny-gutenberg-15M.bin" -z "$M/tok512.bin" -o "$TMP/x.gguf" --type f32
expect_error "quantize: missing flags" "need -m, -o and --type" "$LLAMAC" quantize -m "$M/stories260K.bin"
expect_ok "an f16 GGUF written by another tool generates on the CPU with its own tokenizer" \
    "$LLAMAC" generate --device cpu -m "$M/llama-2-tiny-random.gguf" -p "Hello" -n 4
# llama2.c version 2 (int8) files that lie about themselves. The group size is the int32 at byte 37.
cp "$M/stories260K_q80.bin" "$TMP/v2group0.bin"
patch_int32 "$TMP/v2group0.bin" 37 '\x00\x00\x00\x00'
cp "$M/stories260K_q80.bin" "$TMP/v2group7.bin"
patch_int32 "$TMP/v2group7.bin" 37 '\x07\x00\x00\x00'
head -c 200000 "$M/stories260K_q80.bin" >"$TMP/v2short.bin"
head -c 200 "$M/stories260K_q80.bin" >"$TMP/v2header.bin"
expect_error "version 2: group size 0" "v2group0.bin.*group size 0" "$LLAMAC" generate -m "$TMP/v2group0.bin" "${A[@]}"
expect_error "version 2: group size not dividing a tensor" "v2group7.bin.*not a multiple of the group size 7" "$LLAMAC" generate -m "$TMP/v2group7.bin" "${A[@]}"
expect_error "version 2: truncated" "v2short.bin.*truncated" "$LLAMAC" generate -m "$TMP/v2short.bin" "${A[@]}"
expect_error "version 2: truncated header" "v2header.bin.*256-byte" "$LLAMAC" generate -m "$TMP/v2header.bin" "${A[@]}"
expect_error "unknown dtype" "--dtype q3_k" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --dtype q3_k --device cpu
expect_error "dtype whose blocks do not tile a row" "--dtype q8_0.*172" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --dtype q8_0 --device cpu
expect_error "dtype conversion without a copy" "--weights mmap" "$LLAMAC" generate -m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin" --dtype f16 --weights mmap --device cpu
expect_error "missing model" "nope.bin.*cannot open" "$LLAMAC" generate -m "$TMP/nope.bin" "${A[@]}"
expect_error "wrong tokenizer" "tokenizer.bin.*32000 tokens.*512" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tokenizer.bin"
expect_error "a model as tokenizer" "stories260K.bin" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/stories260K.bin"
expect_error "prompt longer than the context" "context holds 8" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --ctx 8 -p "Once upon a time there was a little girl named Lily"
expect_error "non-UTF-8 prompt" "-p.*UTF-8" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" -p $'abc\xff'
expect_error "unknown flag" "unknown flag '--bogus'" "$LLAMAC" generate --bogus
expect_error "missing flag value" "-n needs a value" "$LLAMAC" generate -m "$M/stories260K.bin" -n
expect_error "non-numeric -n" "-n: invalid value 'abc'" "$LLAMAC" generate -n abc
expect_error "non-numeric temperature" "invalid value 'hot'" "$LLAMAC" generate -t hot
expect_error "top-p out of range" "top-p 2" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --top-p 2
expect_error "negative temperature" "temperature -1" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" -t -1
expect_error "context beyond the model" "--ctx 4096" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --ctx 4096
expect_error "unknown device" "--device tpu" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --device tpu
expect_error "cuda without a CUDA build" "no CUDA" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --device cuda
# --tensor-parallel: the shard plan's errors, then the device's (stories260K: 8 heads, 4 kv heads,
# 172 hidden units); with enough GPUs it is a clear "not built yet" until the multi-GPU backend exists.
S260=(-m "$M/stories260K.bin" -z "$M/tok512.bin" -n 4)
expect_error "tensor parallel: kv heads do not divide" "--tensor-parallel 3: the model's 4 kv heads do not split evenly over 3 GPUs \(use 1, 2 or 4\)" "$LLAMAC" generate "${S260[@]}" --tensor-parallel 3
expect_error "tensor parallel: too many" "--tensor-parallel 65: must be 1 to 64" "$LLAMAC" generate "${S260[@]}" --tensor-parallel 65
expect_error "tensor parallel: negative" "--tensor-parallel -2: must be 1 to 64" "$LLAMAC" generate "${S260[@]}" --tensor-parallel -2
expect_error "tensor parallel: quantized FFN not whole blocks" "172 hidden units do not split into whole 32-weight blocks.*\(use 1\)" "$LLAMAC" generate "${S260[@]}" --dtype q8_0 --tensor-parallel 2
expect_error "tensor parallel on the CPU" "--tensor-parallel needs --device cuda" "$LLAMAC" generate "${S260[@]}" --device cpu --tensor-parallel 2
expect_error "tensor parallel: fewer GPUs than asked" "--tensor-parallel 4( needs 4 GPUs; this machine has|: the multi-GPU backend is not built yet)" "$LLAMAC" generate "${S260[@]}" --device cuda --tensor-parallel 4
expect_error "tensor parallel in bench" "--tensor-parallel needs --device cuda" "$LLAMAC" bench -m "$M/stories260K.bin" --device cpu --tensor-parallel 2
expect_ok "tensor parallel 1 runs" "$LLAMAC" generate "${S260[@]}" --device cpu --tensor-parallel 1
expect_error "unknown weight placement" "--weights disk" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --weights disk
expect_error "unknown simd" "--simd neon" "$LLAMAC" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --simd neon
expect_error "unknown command" "unknown command 'fly'" "$LLAMAC" fly
expect_error "bad --ids" "--ids" "$LLAMAC" logits -m "$M/stories260K.bin" --ids 1,x,3 --out "$TMP/x.f32"
expect_error "token id past the vocabulary" "token 999 is outside" "$LLAMAC" logits -m "$M/stories260K.bin" --ids 1,999 --out "$TMP/x.f32"
expect_error "unknown mkmodel shape" "--shape gpt5" "$LLAMAC" mkmodel --shape gpt5 --out "$TMP/x.bin"
(cd "$TMP" && LLAMAC_MODELS=/nonexistent "$LLAMAC" generate -n 4 >"$TMP/out" 2>"$TMP/err")
rc=$?
if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q "stories15M.bin" "$TMP/err"; then pass "no model: says how to download one"; else fail "no model: says how to download one" "exit $rc" "$(cat "$TMP/err")"; fi

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
