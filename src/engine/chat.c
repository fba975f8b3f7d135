/* Chat templates: a conversation rendered into token ids the way each model
 * family was trained. The template's markers (BOS, EOS, Llama 3's header and
 * end-of-turn tokens) go in as ids; the messages' text is encoded as plain
 * text, so a user who types "<|eot_id|>" cannot end a turn. Both formats
 * follow Meta's reference code (llama/generation.py and llama3's ChatFormat):
 *   Llama 2: <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {reply} </s><s>[INST] ...
 *            each [INST] segment and each reply encoded on its own (SentencePiece's
 *            leading space included), BOS before every user turn, EOS after every reply.
 *   Llama 3: <|begin_of_text|> then per message
 *            <|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}<|eot_id|>
 *            and, to ask for a reply, the assistant header. One BOS in all. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "llamac.h"

static const char *const TEMPLATE_NAMES[LC_CHAT_COUNT] = {"none", "llama2", "llama3"};

const char *lc_chat_template_name(lc_chat_template t) {
    return t >= 0 && t < LC_CHAT_COUNT ? TEMPLATE_NAMES[t] : "unknown";
}

lc_status lc_chat_template_by_name(const char *name, lc_chat_template *out, lc_error *err) {
    for (int t = LC_CHAT_LLAMA2; t < LC_CHAT_COUNT; t++)
        if (strcmp(name, TEMPLATE_NAMES[t]) == 0) {
            *out = (lc_chat_template)t;
            return LC_OK;
        }
    return lc_fail(err, LC_ERR_ARG, "unknown chat template '%s' (llama2 or llama3)", name);
}

lc_chat_template lc_chat_template_detect(const char *jinja, const lc_tokenizer *tok) {
    if (jinja && strstr(jinja, "<|start_header_id|>")) return LC_CHAT_LLAMA3;
    if (jinja && strstr(jinja, "[INST]")) return LC_CHAT_LLAMA2;
    if (jinja && *jinja) return LC_CHAT_NONE; /* a template of another family */
    return lc_tokenizer_token_id(tok, "<|start_header_id|>") >= 0 ? LC_CHAT_LLAMA3 : LC_CHAT_LLAMA2;
}

/* A growing array of ids. */
typedef struct id_list {
    lc_token *ids;
    size_t n, cap;
    lc_status status;
} id_list;

static void push(id_list *l, lc_token id) {
    if (l->status) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        lc_token *bigger = realloc(l->ids, cap * sizeof *bigger);
        if (!bigger) {
            l->status = LC_ERR_NOMEM;
            return;
        }
        l->ids = bigger;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
}

/* Appends the ids of plain text (no BOS/EOS, special-token text not parsed). */
static lc_status push_text(id_list *l, const lc_tokenizer *tok, const char *text, size_t len,
                           lc_error *err) {
    lc_token *ids = NULL;
    size_t n = 0;
    lc_status st = lc_tokenizer_encode(tok, text, len, false, false, &ids, &n, err);
    for (size_t i = 0; !st && i < n; i++) push(l, ids[i]);
    free(ids);
    if (!st && l->status) st = lc_fail(err, l->status, "out of memory rendering a chat");
    return st;
}

static void trim(const char **s, size_t *len) {
    while (*len && isspace((unsigned char)**s)) (*s)++, (*len)--;
    while (*len && isspace((unsigned char)(*s)[*len - 1])) (*len)--;
}

lc_status lc_chat_markers(const lc_tokenizer *tok, lc_chat_template t, lc_chat_marker_ids *m,
                          lc_error *err) {
    memset(m, 0, sizeof *m);
    m->bos = lc_tokenizer_bos(tok);
    m->eos = lc_tokenizer_eos(tok);
    m->start_header = m->end_header = m->end_of_turn = m->end_of_message = -1;
    if (t == LC_CHAT_LLAMA2) {
        m->end_of_reply = m->eos;
        return LC_OK;
    }
    if (t != LC_CHAT_LLAMA3)
        return lc_fail(err, LC_ERR_UNSUPPORTED, "chat template %s cannot render messages",
                       lc_chat_template_name(t));
    m->start_header = lc_tokenizer_token_id(tok, "<|start_header_id|>");
    m->end_header = lc_tokenizer_token_id(tok, "<|end_header_id|>");
    m->end_of_turn = lc_tokenizer_token_id(tok, "<|eot_id|>");
    m->end_of_message = lc_tokenizer_token_id(tok, "<|eom_id|>");
    if (m->start_header < 0 || m->end_header < 0 || m->end_of_turn < 0)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "the llama3 chat template needs <|start_header_id|>, <|end_header_id|> "
                       "and <|eot_id|> in the vocabulary, and this tokenizer lacks them");
    m->end_of_reply = m->end_of_turn;
    return LC_OK;
}

static lc_status render_llama3(id_list *l, const lc_tokenizer *tok, const lc_chat_marker_ids *m,
                               const lc_chat_message *msgs, size_t n, bool reply, lc_error *err) {
    lc_status st = LC_OK;
    for (size_t i = 0; !st && i <= n; i++) {
        if (i == n && !reply) break;
        const char *role = i < n ? msgs[i].role : "assistant";
        push(l, m->start_header);
        if ((st = push_text(l, tok, role, strlen(role), err))) break;
        push(l, m->end_header);
        if ((st = push_text(l, tok, "\n\n", 2, err)) || i == n) break;
        const char *text = msgs[i].content;
        size_t len = strlen(text);
        trim(&text, &len);
        if (len && (st = push_text(l, tok, text, len, err))) break;
        push(l, m->end_of_turn);
    }
    return st;
}

/* Llama 2 pairs each user turn (the first with the system prompt folded in)
 * with the assistant reply after it. */
static lc_status render_llama2(id_list *l, const lc_tokenizer *tok, const lc_chat_marker_ids *m,
                               const lc_chat_message *msgs, size_t n, lc_error *err) {
    const char *system = NULL;
    size_t i = 0;
    if (n && strcmp(msgs[0].role, "system") == 0) system = msgs[i++].content;
    bool first = true;
    for (; i < n; i++) {
        const char *text = msgs[i].content;
        size_t len = strlen(text);
        trim(&text, &len);
        lc_status st;
        if (strcmp(msgs[i].role, "assistant") == 0) {
            /* " {reply} " after [/INST]: encoded alone, then EOS */
            char *s = malloc(len + 3);
            if (!s) return lc_fail(err, LC_ERR_NOMEM, "out of memory rendering a chat");
            s[0] = ' ';
            memcpy(s + 1, text, len);
            s[len + 1] = ' ';
            st = push_text(l, tok, s, len + 2, err);
            free(s);
            push(l, m->eos);
        } else if (strcmp(msgs[i].role, "user") == 0) {
            size_t cap = len + (system ? strlen(system) : 0) + 40;
            char *s = malloc(cap);
            if (!s) return lc_fail(err, LC_ERR_NOMEM, "out of memory rendering a chat");
            int k = first && system && *system
                        ? snprintf(s, cap, "[INST] <<SYS>>\n%s\n<</SYS>>\n\n%.*s [/INST]", system,
                                   (int)len, text)
                        : snprintf(s, cap, "[INST] %.*s [/INST]", (int)len, text);
            push(l, m->bos); /* every user turn, as Meta's reference */
            st = push_text(l, tok, s, (size_t)k, err);
            free(s);
            first = false;
        } else {
            return lc_fail(err, LC_ERR_ARG,
                           "the llama2 chat template takes system (first), user and assistant "
                           "messages, not '%s'",
                           msgs[i].role);
        }
        if (st) return st;
    }
    return LC_OK;
}

lc_status lc_chat_render(const lc_tokenizer *tok, lc_chat_template t, const lc_chat_message *msgs,
                         size_t n, bool bos, bool reply, lc_token **out, size_t *n_out,
                         lc_error *err) {
    *out = NULL;
    *n_out = 0;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return lc_fail(err, LC_ERR_ARG, "chat message %zu has no role or no content", i);
    lc_chat_marker_ids m;
    lc_status st = lc_chat_markers(tok, t, &m, err);
    if (st) return st;
    id_list l = {0};
    if (t == LC_CHAT_LLAMA3) {
        if (bos) push(&l, m.bos);
        st = render_llama3(&l, tok, &m, msgs, n, reply, err);
    } else {
        st = render_llama2(&l, tok, &m, msgs, n, err);
    }
    if (!st && l.status) st = lc_fail(err, l.status, "out of memory rendering a chat");
    if (st) {
        free(l.ids);
        return st;
    }
    *out = l.ids;
    *n_out = l.n;
    return LC_OK;
}
