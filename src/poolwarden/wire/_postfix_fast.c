/* The Postfix log ingest's hot loop in C: ``feed_chunk`` does what
 * ``Correlator.feed_lines`` does for a chunk of complete lines, and gives exactly its
 * results (tests/wire/test_postfix_log_fast.py pins them line for line).
 *
 * Only the commonest lines are taken apart here: a syslog or maillog_file header with a
 * short queue id, and then "removed", "to=<...>" deliveries, smtpd "client=", "message-id="
 * and queued "from=<...>" lines; a stamp's time is computed here when its hour is in the
 * parser's cache (LogParser.stamp_time otherwise). Lines naming no message (no queue id, or
 * NOQUEUE and the like) are skipped as feed_lines skips them. The correlator's state stays
 * in its Python objects (the message dict,
 * the _Message slots; ``deliver`` below is ``Correlator._deliver``), so every other line is
 * handed, whole, to ``Correlator.feed_lines`` and the two paths share one state.
 * Each fast match below follows the Python regex's own order of choices, and a line that
 * strays from the first choice anywhere is handed over untouched (no state changed).
 * Non-ASCII lines go over too (Python's \s and \w differ from ASCII there).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static PyObject *one;
static PyObject *s_year, *s_month, *s_cache;
static PyObject *s_messages, *s_next_sweep, *s_now, *s_open, *s_start, *s_sweep,
    *s_routes, *s_route, *s_recipients, *s_feed_lines, *s_last_stamp, *s_last_time, *s_stamp_time, *s_last_seen,
    *s_message_id, *s_info, *s_sender, *s_size, *s_nrcpt, *s_client_name, *s_client_ip,
    *s_sasl_method, *s_sasl_username, *s_first_seen, *s_notification_of;

/* Python's str.isspace() for ASCII: what the regex's \s matches there. */
static inline int py_space(unsigned char c)
{
    return c == ' ' || (c >= 9 && c <= 13) || (c >= 28 && c <= 31);
}

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static inline int is_word(unsigned char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static inline int is_alnum(unsigned char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline int is_upper_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'F');
}

static PyObject *ascii_str(const char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_New(n, 127);
    if (s != NULL)
        memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)n);
    return s;
}

/* A few strings that repeat on nearly every line (host, program): reused, not rebuilt. */
#define CACHE_SLOTS 64
typedef struct {
    PyObject *str[CACHE_SLOTS];
} StrCache;

static PyObject *cached_str(StrCache *cache, const char *p, Py_ssize_t n)
{
    unsigned h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    PyObject **slot = &cache->str[h % CACHE_SLOTS];
    if (*slot != NULL && PyUnicode_GET_LENGTH(*slot) == n
        && memcmp(PyUnicode_1BYTE_DATA(*slot), p, (size_t)n) == 0) {
        Py_INCREF(*slot);
        return *slot;
    }
    PyObject *s = ascii_str(p, n);
    if (s == NULL)
        return NULL;
    Py_XSETREF(*slot, Py_NewRef(s));
    return s;
}

static void clear_cache(StrCache *cache)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        Py_CLEAR(cache->str[i]);
}

typedef struct {
    const char *p;
    Py_ssize_t n;
} Span;

#define NONE_SPAN ((Span){NULL, 0})

/* The common header (postfix_log._HEADER):
 * ([A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d{1,9})?) (\S+) ([^\s\[:/]+/[^\s\[:]+)
 * \[(\d{1,10})\]: (?:([0-9A-Za-z]+): )?(.*)        Returns 0 when it does not match. */
typedef struct {
    Span stamp, host, program, pid, token, rest;
} Header;

static int match_header(const char *s, Py_ssize_t n, Header *h)
{
    const char *e = s + n, *p = s;
    if (n < 16 || !(s[0] >= 'A' && s[0] <= 'Z') || !(s[1] >= 'a' && s[1] <= 'z')
        || !(s[2] >= 'a' && s[2] <= 'z') || s[3] != ' ')
        return 0;
    p = s + 4;
    /* [ \d]?\d then a space: one or two characters */
    if (p + 2 <= e && (p[0] == ' ' || is_digit((unsigned char)p[0]))
        && is_digit((unsigned char)p[1]) && p + 2 < e && p[2] == ' ')
        p += 2;
    else if (p + 1 < e && is_digit((unsigned char)p[0]) && p[1] == ' ')
        p += 1;
    else
        return 0;
    p++; /* the space */
    if (e - p < 8)
        return 0;
    for (int i = 0; i < 8; i++) {
        unsigned char c = (unsigned char)p[i];
        if (i == 2 || i == 5 ? c != ':' : !is_digit(c))
            return 0;
    }
    p += 8;
    if (p < e && *p == '.') {
        const char *q = p + 1;
        while (q < e && is_digit((unsigned char)*q))
            q++;
        if (q - (p + 1) < 1 || q - (p + 1) > 9)
            return 0;
        p = q;
    }
    h->stamp = (Span){s, p - s};
    if (p >= e || *p != ' ')
        return 0;
    p++;
    const char *host = p;
    while (p < e && !py_space((unsigned char)*p))
        p++;
    if (p == host || p >= e || *p != ' ')
        return 0;
    h->host = (Span){host, p - host};
    p++;
    const char *prog = p;
    while (p < e && !py_space((unsigned char)*p) && *p != '[' && *p != ':' && *p != '/')
        p++;
    if (p == prog || p >= e || *p != '/')
        return 0;
    p++;
    const char *second = p;
    while (p < e && !py_space((unsigned char)*p) && *p != '[' && *p != ':')
        p++;
    if (p == second || p >= e || *p != '[')
        return 0;
    h->program = (Span){prog, p - prog};
    p++;
    const char *pid = p;
    while (p < e && is_digit((unsigned char)*p))
        p++;
    if (p == pid || p - pid > 10 || e - p < 3 || p[0] != ']' || p[1] != ':' || p[2] != ' ')
        return 0;
    h->pid = (Span){pid, p - pid};
    p += 3;
    const char *tok = p;
    while (p < e && is_alnum((unsigned char)*p))
        p++;
    if (p > tok && e - p >= 2 && p[0] == ':' && p[1] == ' ') {
        h->token = (Span){tok, p - tok};
        p += 2;
    } else {
        h->token = NONE_SPAN;
        p = tok;
    }
    h->rest = (Span){p, e - p};
    return 1;
}

static int is_level(Span t)
{
    static const char *levels[] = {"warning", "error", "fatal", "panic", "info"};
    for (size_t i = 0; i < sizeof levels / sizeof *levels; i++)
        if ((size_t)t.n == strlen(levels[i]) && memcmp(t.p, levels[i], (size_t)t.n) == 0)
            return 1;
    return 0;
}

/* postfix_log._is_queue_id's long form: token.find("z", 10) >= 0 */
static int long_queue_id(Span t)
{
    return t.n > 10 && memchr(t.p + 10, 'z', (size_t)(t.n - 10)) != NULL;
}

static inline int starts(Span s, const char *prefix, Py_ssize_t n)
{
    return s.n >= n && memcmp(s.p, prefix, (size_t)n) == 0;
}

/* [^,]* up to the first ',' which must be followed by ' ': the value, or 0. */
static int upto_comma(const char **pp, const char *e, Span *out)
{
    const char *p = *pp, *q = memchr(p, ',', (size_t)(e - p));
    if (q == NULL || q + 1 >= e || q[1] != ' ')
        return 0;
    *out = (Span){p, q - p};
    *pp = q + 2;
    return 1;
}

/* <([^>]*|.*?)>, taking the first alternative: the address up to the first '>', which must
 * be followed by ", ". */
static int angle_value(const char **pp, const char *e, Span *out)
{
    const char *p = *pp, *q = memchr(p, '>', (size_t)(e - p));
    if (q == NULL || e - q < 3 || q[1] != ',' || q[2] != ' ')
        return 0;
    *out = (Span){p, q - p};
    *pp = q + 3;
    return 1;
}

/* postfix_log._DELIVERY on the text after "to=<" (r points at the whole rest):
 * to=<([^>]*|.*?)>, (?:orig_to=<([^>]*|.*?)>, )?relay=([^,]*), (?:conn_use=(\d+), )?
 * delay=([^,]*), delays=([^,]*), (?:tls=([^,]*), )?(?:[\w-]+=[^,]*, )*?
 * dsn=([^,]*), status=(\w+)(?: \((.*)\))?
 * The fields in group order; 0 when the first choices do not give a match. */
enum { D_TO, D_ORIG, D_RELAY, D_CONN, D_DELAY, D_DELAYS, D_TLS, D_DSN, D_STATUS, D_REPLY,
       D_FIELDS };

static int match_delivery(Span r, Span f[D_FIELDS])
{
    const char *p = r.p + 4, *e = r.p + r.n;
    for (int i = 0; i < D_FIELDS; i++)
        f[i] = NONE_SPAN;
    if (!angle_value(&p, e, &f[D_TO]))
        return 0;
    if (e - p >= 9 && memcmp(p, "orig_to=<", 9) == 0) {
        p += 9;
        if (!angle_value(&p, e, &f[D_ORIG]))
            return 0;
    }
    if (e - p < 6 || memcmp(p, "relay=", 6) != 0)
        return 0;
    p += 6;
    if (!upto_comma(&p, e, &f[D_RELAY]))
        return 0;
    if (e - p >= 9 && memcmp(p, "conn_use=", 9) == 0) {
        const char *q = p + 9;
        while (q < e && is_digit((unsigned char)*q))
            q++;
        if (q == p + 9 || e - q < 2 || q[0] != ',' || q[1] != ' ')
            return 0;
        f[D_CONN] = (Span){p + 9, q - (p + 9)};
        p = q + 2;
    }
    if (e - p < 6 || memcmp(p, "delay=", 6) != 0)
        return 0;
    p += 6;
    if (!upto_comma(&p, e, &f[D_DELAY]))
        return 0;
    if (e - p < 7 || memcmp(p, "delays=", 7) != 0)
        return 0;
    p += 7;
    if (!upto_comma(&p, e, &f[D_DELAYS]))
        return 0;
    if (e - p >= 4 && memcmp(p, "tls=", 4) == 0) {
        p += 4;
        if (!upto_comma(&p, e, &f[D_TLS]))
            return 0;
    }
    for (;;) { /* lazily: try dsn= first, else skip one "name=value, " */
        if (e - p >= 4 && memcmp(p, "dsn=", 4) == 0) {
            const char *q = p + 4;
            Span dsn;
            if (upto_comma(&q, e, &dsn) && e - q >= 7 && memcmp(q, "status=", 7) == 0) {
                const char *w = q + 7, *st = w;
                while (w < e && is_word((unsigned char)*w))
                    w++;
                if (w > st) {
                    f[D_DSN] = dsn;
                    f[D_STATUS] = (Span){st, w - st};
                    if (e - w >= 2 && w[0] == ' ' && w[1] == '(') {
                        const char *close = e - 1;
                        while (close > w + 1 && *close != ')')
                            close--;
                        if (close > w + 1 && *close == ')')
                            f[D_REPLY] = (Span){w + 2, close - (w + 2)};
                    }
                    return 1;
                }
            }
        }
        const char *name = p;
        while (p < e && (is_word((unsigned char)*p) || *p == '-'))
            p++;
        if (p == name || p >= e || *p != '=')
            return 0;
        p++;
        Span ignored;
        if (!upto_comma(&p, e, &ignored))
            return 0;
    }
}

/* postfix_log._QUEUED, queued form only:
 * from=<([^>]*|.*?)>, size=(\d+), nrcpt=(\d+)   (an expiry and anything else: 0) */
static int match_queued(Span r, Span *sender, Span *size, Span *nrcpt)
{
    const char *p = r.p + 6, *e = r.p + r.n;
    if (!angle_value(&p, e, sender))
        return 0;
    if (e - p < 5 || memcmp(p, "size=", 5) != 0)
        return 0;
    p += 5;
    const char *d = p;
    while (p < e && is_digit((unsigned char)*p))
        p++;
    if (p == d || e - p < 8 || memcmp(p, ", nrcpt=", 8) != 0)
        return 0;
    *size = (Span){d, p - d};
    p += 8;
    d = p;
    while (p < e && is_digit((unsigned char)*p))
        p++;
    if (p == d)
        return 0;
    *nrcpt = (Span){d, p - d};
    return 1;
}

/* postfix_log._CLIENT and the _PAIR.findall over its tail, as _with_queue_id reads them:
 * client=([^\[\s,]*)\[([^\]]*)\](?::(\d+))?(?:, (.*))?   then ([\w-]+)=(<[^>]*>|[^,\s]*)
 * Gives the name, the address and the last sasl_method / sasl_username pairs; 0 when the
 * line does not match, or when the tail names client_name or client_ip again (Python's
 * dict would let those win: rare, so left to it). */
typedef struct {
    Span name, addr, sasl_method, sasl_username;
} Client;

static int match_client(Span r, Client *c)
{
    const char *p = r.p + 7, *e = r.p + r.n;
    memset(c, 0, sizeof *c);
    const char *name = p;
    while (p < e && *p != '[' && *p != ',' && !py_space((unsigned char)*p))
        p++;
    if (p >= e || *p != '[')
        return 0;
    c->name = (Span){name, p - name};
    const char *addr = ++p, *close = memchr(p, ']', (size_t)(e - p));
    if (close == NULL)
        return 0;
    c->addr = (Span){addr, close - addr};
    p = close + 1;
    if (p < e && *p == ':') { /* (?::(\d+))? : taken only when digits follow */
        const char *d = p + 1;
        while (d < e && is_digit((unsigned char)*d))
            d++;
        if (d > p + 1)
            p = d;
    }
    if (!(e - p >= 2 && p[0] == ',' && p[1] == ' '))
        return 1; /* no tail (match() ignores what follows) */
    p += 2;
    while (p < e) { /* findall: try a pair at each position, else step one character */
        const char *key = p;
        while (p < e && (is_word((unsigned char)*p) || *p == '-'))
            p++;
        if (p == key) {
            p++;
            continue;
        }
        if (p >= e || *p != '=')
            continue; /* the next try starts inside this word: it cannot reach '=' */
        Span k = {key, p - key}, v;
        p++;
        const char *gt = (p < e && *p == '<') ? memchr(p, '>', (size_t)(e - p)) : NULL;
        if (gt != NULL) {
            v = (Span){p, gt + 1 - p};
            p = gt + 1;
        } else {
            const char *val = p;
            while (p < e && *p != ',' && !py_space((unsigned char)*p))
                p++;
            v = (Span){val, p - val};
        }
        if ((k.n == 11 && memcmp(k.p, "client_name", 11) == 0)
            || (k.n == 9 && memcmp(k.p, "client_ip", 9) == 0))
            return 0;
        if (k.n == 11 && memcmp(k.p, "sasl_method", 11) == 0)
            c->sasl_method = v;
        else if (k.n == 13 && memcmp(k.p, "sasl_username", 13) == 0)
            c->sasl_username = v;
    }
    return 1;
}

static PyObject *span_str(Span s)
{
    if (s.p == NULL)
        Py_RETURN_NONE;
    return ascii_str(s.p, s.n);
}

static PyObject *span_int(Span s)
{
    PyObject *text = ascii_str(s.p, s.n);
    if (text == NULL)
        return NULL;
    PyObject *value = PyLong_FromUnicodeObject(text, 10);
    Py_DECREF(text);
    return value;
}

typedef struct {
    PyObject *corr, *parser, *out, *messages;
    PyObject *routes, *route, *open, *start, *feed_lines;
    PyObject *stamp_obj, *stamp_time; /* the parser's last stamp and its time */
    double next_sweep;
    StrCache hosts, programs;
} Loop;

static int load_parser_state(Loop *L)
{
    Py_CLEAR(L->stamp_obj);
    Py_CLEAR(L->stamp_time);
    L->stamp_obj = PyObject_GetAttr(L->parser, s_last_stamp);
    if (L->stamp_obj == NULL)
        return -1;
    if (!PyUnicode_Check(L->stamp_obj) || !PyUnicode_IS_ASCII(L->stamp_obj)) {
        Py_SETREF(L->stamp_obj, PyUnicode_FromString("\x7f"));  /* never equal */
        if (L->stamp_obj == NULL)
            return -1;
    }
    L->stamp_time = PyObject_GetAttr(L->parser, s_last_time);
    return L->stamp_time == NULL ? -1 : 0;
}

static int load_next_sweep(Loop *L)
{
    PyObject *v = PyObject_GetAttr(L->corr, s_next_sweep);
    if (v == NULL)
        return -1;
    L->next_sweep = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return PyErr_Occurred() ? -1 : 0;
}

/* The whole line through Correlator.feed_lines (Python), then resync what it may move. */
static int hand_over(Loop *L, PyObject *line)
{
    PyObject *one = PyTuple_Pack(1, line);
    if (one == NULL)
        return -1;
    PyObject *args[] = {L->parser, one, L->out};
    PyObject *r = PyObject_Vectorcall(L->feed_lines, args, 3, NULL);
    Py_DECREF(one);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    if (load_parser_state(L) < 0 || load_next_sweep(L) < 0)
        return -1;
    return 0;
}

static int hand_over_span(Loop *L, const char *p, Py_ssize_t n)
{
    PyObject *line = ascii_str(p, n);
    if (line == NULL)
        return -1;
    int r = hand_over(L, line);
    Py_DECREF(line);
    return r;
}

/* messages.get(key) or self._open(key), then message.last_seen = self._now */
static PyObject *touch_message(Loop *L, PyObject *key)
{
    PyObject *message = PyDict_GetItemWithError(L->messages, key);
    if (message != NULL) {
        Py_INCREF(message);
    } else {
        if (PyErr_Occurred())
            return NULL;
        message = PyObject_CallOneArg(L->open, key);
        if (message == NULL)
            return NULL;
    }
    PyObject *now = PyObject_GetAttr(L->corr, s_now);
    if (now == NULL || PyObject_SetAttr(message, s_last_seen, now) < 0) {
        Py_XDECREF(now);
        Py_DECREF(message);
        return NULL;
    }
    Py_DECREF(now);
    return message;
}

/* postfix_correlate.Delivery and MessageInfo, given by use_types() */
static PyObject *delivery_type, *info_type;

/* Delivery's fields, by position (postfix_correlate.Delivery) */
enum { F_TIME, F_HOST, F_QID, F_RCPT, F_STATUS, F_LOG_STATUS, F_DSN, F_REPLY, F_RELAY,
       F_TRANSPORT, F_EGRESS, F_SERVICE, F_MESSAGE, F_ORIG, F_DELAY, F_DELAYS, F_CONN,
       F_ATTEMPT, F_SEQ, F_COUNT };

static int contains_expired(Span reply) /* "message expired" in reply.lower() */
{
    static const char needle[] = "message expired";
    const Py_ssize_t n = sizeof needle - 1;
    for (Py_ssize_t i = 0; i + n <= reply.n; i++) {
        Py_ssize_t j = 0;
        while (j < n) {
            char c = reply.p[i + j];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != needle[j])
                break;
            j++;
        }
        if (j == n)
            return 1;
    }
    return 0;
}

/* _Message.snapshot(host, qid) when its info is None: the MessageInfo of what the lines
 * so far said, remembered as message.info (rebuilt after the next change). */
static PyObject *snapshot_of(PyObject *message, PyObject *host, PyObject *qid)
{
    PyObject *names[] = {s_first_seen, s_message_id, s_sender, s_size, s_nrcpt, s_client_name,
                         s_client_ip, s_sasl_method, s_sasl_username, s_notification_of};
    const int count = (int)(sizeof names / sizeof *names);
    PyObject *fields = PyTuple_New(2 + count), *info = NULL;
    if (fields == NULL)
        return NULL;
    PyTuple_SET_ITEM(fields, 0, Py_NewRef(host));
    PyTuple_SET_ITEM(fields, 1, Py_NewRef(qid));
    for (int i = 0; i < count; i++) {
        PyObject *v = PyObject_GetAttr(message, names[i]);
        if (v == NULL)
            goto done;
        PyTuple_SET_ITEM(fields, 2 + i, v);
    }
    PyObject *wrapped = PyTuple_Pack(1, fields); /* tuple.__new__(MessageInfo, fields) */
    if (wrapped == NULL)
        goto done;
    info = PyTuple_Type.tp_new((PyTypeObject *)info_type, wrapped, NULL);
    Py_DECREF(wrapped);
    if (info != NULL && PyObject_SetAttr(message, s_info, info) < 0)
        Py_CLEAR(info);
done:
    Py_DECREF(fields);
    return info;
}

/* Correlator._deliver: the Delivery of one delivery line (attempt and seq from the
 * recipient's previous delivery), remembered as the recipient's last. */
static PyObject *deliver(Loop *L, PyObject *host, PyObject *time, PyObject *program,
                         PyObject *qid, PyObject *message, Span f[D_FIELDS])
{
    PyObject *v[F_COUNT] = {NULL};
    PyObject *route = NULL, *recipients = NULL, *result = NULL, *args = NULL;
    if (delivery_type == NULL || info_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_postfix_fast.use_types() was not called");
        return NULL;
    }
    Span status = f[D_STATUS];
    v[F_LOG_STATUS] = span_str(status);
    if (status.n == 7 && memcmp(status.p, "bounced", 7) == 0 && f[D_REPLY].p != NULL
        && contains_expired(f[D_REPLY]))
        v[F_STATUS] = PyUnicode_FromString("expired");
    else
        v[F_STATUS] = Py_XNewRef(v[F_LOG_STATUS]);
    v[F_RCPT] = span_str(f[D_TO]);
    v[F_DSN] = span_str(f[D_DSN]);
    v[F_REPLY] = span_str(f[D_REPLY]);
    v[F_RELAY] = span_str(f[D_RELAY]);
    v[F_ORIG] = span_str(f[D_ORIG]);
    v[F_DELAYS] = span_str(f[D_DELAYS]);
    for (int i = F_RCPT; i <= F_RELAY; i++)
        if (v[i] == NULL)
            goto done;
    if (v[F_ORIG] == NULL || v[F_DELAYS] == NULL)
        goto done;
    if (f[D_DELAY].p == NULL) {
        v[F_DELAY] = Py_NewRef(Py_None);
    } else { /* _float: float(text), or None when it is not a number */
        PyObject *text = span_str(f[D_DELAY]);
        if (text == NULL)
            goto done;
        v[F_DELAY] = PyFloat_FromString(text);
        Py_DECREF(text);
        if (v[F_DELAY] == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError))
                goto done;
            PyErr_Clear();
            v[F_DELAY] = Py_NewRef(Py_None);
        }
    }
    v[F_CONN] = f[D_CONN].p == NULL ? Py_NewRef(Py_None) : span_int(f[D_CONN]);
    if (v[F_CONN] == NULL)
        goto done;
    route = PyDict_GetItemWithError(L->routes, program);
    if (route != NULL && PyObject_IsTrue(route) == 1) {
        Py_INCREF(route);
    } else {
        if (PyErr_Occurred())
            goto done;
        route = PyObject_CallOneArg(L->route, program);
        if (route == NULL)
            goto done;
    }
    if (!PyTuple_Check(route) || PyTuple_GET_SIZE(route) != 3) {
        PyErr_SetString(PyExc_TypeError, "a route must be a 3-tuple");
        goto done;
    }
    v[F_TRANSPORT] = Py_NewRef(PyTuple_GET_ITEM(route, 0));
    v[F_EGRESS] = Py_NewRef(PyTuple_GET_ITEM(route, 1));
    v[F_SERVICE] = Py_NewRef(PyTuple_GET_ITEM(route, 2));
    recipients = PyObject_GetAttr(message, s_recipients);
    if (recipients == NULL)
        goto done;
    if (!PyDict_Check(recipients)) {
        PyErr_SetString(PyExc_TypeError, "_Message.recipients must be a dict");
        goto done;
    }
    PyObject *previous = PyDict_GetItemWithError(recipients, v[F_RCPT]);
    if (previous == NULL && PyErr_Occurred())
        goto done;
    if (previous == NULL || previous == Py_None) {
        v[F_ATTEMPT] = PyLong_FromLong(1);
        v[F_SEQ] = PyLong_FromLong(0);
    } else {
        if (!PyTuple_Check(previous) || PyTuple_GET_SIZE(previous) != F_COUNT) {
            PyErr_SetString(PyExc_TypeError, "a recipient's last delivery must be a Delivery");
            goto done;
        }
        v[F_ATTEMPT] = PyNumber_Add(PyTuple_GET_ITEM(previous, F_ATTEMPT), one);
        int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(previous, F_TIME), time, Py_EQ);
        if (same == 1)
            same = PyObject_RichCompareBool(PyTuple_GET_ITEM(previous, F_STATUS),
                                            v[F_STATUS], Py_EQ);
        if (same < 0)
            goto done;
        v[F_SEQ] = same ? PyNumber_Add(PyTuple_GET_ITEM(previous, F_SEQ), one)
                        : PyLong_FromLong(0);
    }
    if (v[F_ATTEMPT] == NULL || v[F_SEQ] == NULL)
        goto done;
    PyObject *info = PyObject_GetAttr(message, s_info);
    if (info == NULL)
        goto done;
    int has = PyObject_IsTrue(info);
    if (has < 0) {
        Py_DECREF(info);
        goto done;
    }
    if (!has) { /* message.info or message.snapshot(host, qid) */
        Py_DECREF(info);
        info = snapshot_of(message, host, qid);
        if (info == NULL)
            goto done;
    }
    v[F_MESSAGE] = info;
    v[F_TIME] = Py_NewRef(time);
    v[F_HOST] = Py_NewRef(host);
    v[F_QID] = Py_NewRef(qid);
    args = PyTuple_New(F_COUNT);
    if (args == NULL)
        goto done;
    for (int i = 0; i < F_COUNT; i++) {
        PyTuple_SET_ITEM(args, i, v[i]);
        v[i] = NULL;
    }
    /* tuple.__new__(Delivery, fields): what the NamedTuple's __new__ does */
    PyObject *wrapped = PyTuple_Pack(1, args);
    if (wrapped == NULL)
        goto done;
    result = PyTuple_Type.tp_new((PyTypeObject *)delivery_type, wrapped, NULL);
    Py_DECREF(wrapped);
    if (result != NULL && PyDict_SetItem(recipients, PyTuple_GET_ITEM(args, F_RCPT),
                                         result) < 0)
        Py_CLEAR(result);
done:
    for (int i = 0; i < F_COUNT; i++)
        Py_XDECREF(v[i]);
    Py_XDECREF(args);
    Py_XDECREF(route);
    Py_XDECREF(recipients);
    return result;
}

static int on_delivery(Loop *L, PyObject *key, PyObject *host, PyObject *timestamp,
                       PyObject *program, PyObject *token, Span f[D_FIELDS])
{
    PyObject *message = touch_message(L, key);
    if (message == NULL)
        return -1;
    int rc = -1;
    PyObject *d = deliver(L, host, timestamp, program, token, message, f);
    if (d != NULL) {
        rc = PyList_Append(L->out, d);
        Py_DECREF(d);
    }
    Py_DECREF(message);
    return rc;
}

static int on_message_id(Loop *L, PyObject *key, Span r)
{
    Span v = {r.p + 11, r.n - 11};
    if (v.n >= 2 && v.p[0] == '<' && v.p[v.n - 1] == '>')
        v = (Span){v.p + 1, v.n - 2};
    PyObject *message = touch_message(L, key);
    if (message == NULL)
        return -1;
    PyObject *old = PyObject_GetAttr(message, s_message_id);
    if (old == NULL)
        goto fail;
    if (old != Py_None) { /* a second message under this id */
        Py_SETREF(message, PyObject_CallOneArg(L->start, key));
        if (message == NULL) {
            Py_DECREF(old);
            return -1;
        }
    }
    Py_DECREF(old);
    PyObject *value = ascii_str(v.p, v.n);
    if (value == NULL)
        goto fail;
    int rc = PyObject_SetAttr(message, s_message_id, value);
    Py_DECREF(value);
    if (rc < 0 || PyObject_SetAttr(message, s_info, Py_None) < 0)
        goto fail;
    Py_DECREF(message);
    return 0;
fail:
    Py_DECREF(message);
    return -1;
}

static int on_queued(Loop *L, PyObject *key, Span sender, Span size, Span nrcpt)
{
    PyObject *message = touch_message(L, key);
    if (message == NULL)
        return -1;
    PyObject *who = ascii_str(sender.p, sender.n), *bytes = span_int(size),
             *count = span_int(nrcpt);
    int rc = -1;
    if (who != NULL && bytes != NULL && count != NULL
        && PyObject_SetAttr(message, s_sender, who) == 0
        && PyObject_SetAttr(message, s_size, bytes) == 0
        && PyObject_SetAttr(message, s_nrcpt, count) == 0
        && PyObject_SetAttr(message, s_info, Py_None) == 0)
        rc = 0;
    Py_XDECREF(who);
    Py_XDECREF(bytes);
    Py_XDECREF(count);
    Py_DECREF(message);
    return rc;
}

/* Correlator.on for CLIENT: a new message, with the client's name, address and login. */
static int on_client(Loop *L, PyObject *key, Client *c)
{
    PyObject *message = PyObject_CallOneArg(L->start, key);
    if (message == NULL)
        return -1;
    PyObject *names[] = {s_client_name, s_client_ip, s_sasl_method, s_sasl_username};
    Span values[] = {c->name, c->addr, c->sasl_method, c->sasl_username};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        PyObject *v = span_str(values[i]);
        rc = v == NULL ? -1 : PyObject_SetAttr(message, names[i], v);
        Py_XDECREF(v);
    }
    Py_DECREF(message);
    return rc;
}

/* LogParser._syslog_time's common case: the year known, no turn of the year, the hour
 * in the parser's cache. A new float; NULL with no error set when the parser must decide
 * (it is then called); NULL with an error set on a failure. */
static PyObject *cached_stamp_time(Loop *L, Span stamp)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int month = 0;
    for (int i = 0; i < 12 && !month; i++)
        if (memcmp(stamp.p, months + 3 * i, 3) == 0)
            month = i + 1;
    if (!month)
        return NULL;
    const char *p = stamp.p + 3, *e = stamp.p + stamp.n;
    while (p < e && *p == ' ')
        p++;
    const char *day = p;
    while (p < e && *p != ' ')
        p++;
    int day_n = (int)(p - day);
    while (p < e && *p == ' ')
        p++;
    const char *hms = p; /* HH:MM:SS[.fraction], as the header matched it */
    if (e - hms < 8)
        return NULL;
    PyObject *year = PyObject_GetAttr(L->parser, s_year);
    if (year == NULL)
        return NULL;
    int known = year != Py_None;
    Py_DECREF(year);
    PyObject *last = PyObject_GetAttr(L->parser, s_month);
    if (last == NULL)
        return NULL;
    long last_month = PyLong_AsLong(last);
    Py_DECREF(last);
    if (last_month == -1 && PyErr_Occurred())
        return NULL;
    if (!known || month < last_month - 6 || (month > last_month + 6 && last_month))
        return NULL; /* the reference year, or a turn of the year: the parser's call */
    char key[64]; /* f"{month} {day} {hms[:2]}" */
    int n = snprintf(key, sizeof key, "%d %.*s %.2s", month, day_n, day, hms);
    if (n <= 0 || n >= (int)sizeof key)
        return NULL;
    PyObject *text = ascii_str(key, n), *cache = PyObject_GetAttr(L->parser, s_cache);
    PyObject *base = NULL;
    if (text != NULL && cache != NULL && PyDict_Check(cache))
        base = PyDict_GetItemWithError(cache, text);
    Py_XINCREF(base);
    Py_XDECREF(text);
    Py_XDECREF(cache);
    if (base == NULL || !PyFloat_Check(base)) {
        Py_XDECREF(base);
        return NULL; /* a new hour (or an error, still set): the parser's call */
    }
    double seconds = PyFloat_AS_DOUBLE(base);
    Py_DECREF(base);
    /* base + int(hms[3:5]) * 60 + int(hms[6:8]), then + float("." + fraction) */
    seconds = seconds + (double)((hms[3] - '0') * 10 + (hms[4] - '0')) * 60;
    seconds = seconds + (double)((hms[6] - '0') * 10 + (hms[7] - '0'));
    if (e - hms > 9 && hms[8] == '.') {
        char fraction[16];
        int digits = (int)(e - hms - 8);
        if (digits >= (int)sizeof fraction)
            return NULL;
        memcpy(fraction, hms + 8, (size_t)digits);
        fraction[digits] = '\0';
        double f = PyOS_string_to_double(fraction, NULL, NULL);
        if (f == -1.0 && PyErr_Occurred())
            return NULL;
        seconds += f;
    }
    PyObject *m = PyLong_FromLong(month);
    if (m == NULL || PyObject_SetAttr(L->parser, s_month, m) < 0) {
        Py_XDECREF(m);
        return NULL;
    }
    Py_DECREF(m);
    return PyFloat_FromDouble(seconds);
}

/* The line's time, as feed_lines gets it: the parser's last time when the stamp is its
 * last stamp, else parser.stamp_time(stamp). A new reference (maybe None). */
static PyObject *line_time(Loop *L, Span stamp)
{
    if (PyUnicode_GET_LENGTH(L->stamp_obj) == stamp.n
        && memcmp(PyUnicode_1BYTE_DATA(L->stamp_obj), stamp.p, (size_t)stamp.n) == 0)
        return Py_NewRef(L->stamp_time);
    PyObject *text = ascii_str(stamp.p, stamp.n);
    if (text == NULL)
        return NULL;
    PyObject *t = cached_stamp_time(L, stamp);
    if (t != NULL) { /* what stamp_time() records, recorded here */
        if (PyObject_SetAttr(L->parser, s_last_stamp, text) < 0
            || PyObject_SetAttr(L->parser, s_last_time, t) < 0) {
            Py_DECREF(t);
            t = NULL;
        }
    } else if (!PyErr_Occurred()) {
        t = PyObject_CallMethodOneArg(L->parser, s_stamp_time, text);
    }
    if (t == NULL) {
        Py_DECREF(text);
        return NULL;
    }
    Py_SETREF(L->stamp_obj, text);
    Py_XSETREF(L->stamp_time, Py_NewRef(t));
    return t;
}

/* One ASCII line (no newline). 0, or -1 with an exception set. */
static int one_line(Loop *L, const char *s, Py_ssize_t n)
{
    Header h;
    if (!match_header(s, n, &h))
        return hand_over_span(L, s, n);
    PyObject *timestamp = line_time(L, h.stamp);
    if (timestamp == NULL)
        return -1;
    int rc = 0;
    if (h.token.p == NULL)
        goto done; /* no queue id: nothing to correlate */
    int short_id = h.token.n >= 6;
    for (Py_ssize_t i = 0; short_id && i < h.token.n; i++)
        short_id = is_upper_hex((unsigned char)h.token.p[i]);
    if (!short_id) {
        /* split_token: a severity or a long queue id goes to Python; any other word
         * (NOQUEUE, statistics, Deleted...) names no message: nothing to correlate */
        if (is_level(h.token) || long_queue_id(h.token))
            rc = hand_over_span(L, s, n);
        goto done;
    }
    Span r = h.rest;
    while (r.n > 0 && (r.p[r.n - 1] == '\r' || r.p[r.n - 1] == '\n'))
        r.n--;
    enum { REMOVED, DELIVERY, MESSAGE_ID, QUEUED, CLIENT } what;
    Client client;
    Span f[D_FIELDS], sender = NONE_SPAN, size = NONE_SPAN, nrcpt = NONE_SPAN;
    if (r.n == 7 && memcmp(r.p, "removed", 7) == 0)
        what = REMOVED;
    else if (starts(r, "to=<", 4) && match_delivery(r, f))
        what = DELIVERY;
    else if (starts(r, "message-id=", 11))
        what = MESSAGE_ID;
    else if (starts(r, "from=<", 6) && match_queued(r, &sender, &size, &nrcpt))
        what = QUEUED;
    else if (starts(r, "client=", 7) && match_client(r, &client))
        what = CLIENT;
    else {
        rc = hand_over_span(L, s, n);
        goto done;
    }
    if (timestamp != Py_None) {
        if (PyObject_SetAttr(L->corr, s_now, timestamp) < 0)
            goto fail;
        double t = PyFloat_AsDouble(timestamp);
        if (t == -1.0 && PyErr_Occurred())
            goto fail;
        if (t >= L->next_sweep) {
            PyObject *r2 = PyObject_CallMethodOneArg(L->corr, s_sweep, timestamp);
            if (r2 == NULL || load_next_sweep(L) < 0) {
                Py_XDECREF(r2);
                goto fail;
            }
            Py_DECREF(r2);
        }
    }
    PyObject *host = cached_str(&L->hosts, h.host.p, h.host.n);
    PyObject *token = ascii_str(h.token.p, h.token.n);
    PyObject *key = (host && token) ? PyTuple_Pack(2, host, token) : NULL;
    if (key == NULL) {
        rc = -1;
    } else if (what == REMOVED) {
        /* messages.pop(key, None) */
        rc = PyDict_Contains(L->messages, key);
        if (rc > 0)
            rc = PyDict_DelItem(L->messages, key);
    } else if (what == DELIVERY) {
        PyObject *program = cached_str(&L->programs, h.program.p, h.program.n);
        rc = program == NULL ? -1 : on_delivery(L, key, host, timestamp, program, token, f);
        Py_XDECREF(program);
    } else if (what == MESSAGE_ID) {
        rc = on_message_id(L, key, r);
    } else if (what == CLIENT) {
        rc = on_client(L, key, &client);
    } else {
        rc = on_queued(L, key, sender, size, nrcpt);
    }
    Py_XDECREF(key);
    Py_XDECREF(token);
    Py_XDECREF(host);
done:
    Py_DECREF(timestamp);
    return rc;
fail:
    Py_DECREF(timestamp);
    return -1;
}

static void loop_clear(Loop *L)
{
    Py_CLEAR(L->messages);
    Py_CLEAR(L->routes);
    Py_CLEAR(L->route);
    Py_CLEAR(L->open);
    Py_CLEAR(L->start);
    Py_CLEAR(L->feed_lines);
    Py_CLEAR(L->stamp_obj);
    Py_CLEAR(L->stamp_time);
    clear_cache(&L->hosts);
    clear_cache(&L->programs);
}

static int is_ascii(const char *p, const char *end)
{
    uint64_t high = 0, word;
    for (; end - p >= 8; p += 8) { /* eight bytes at a time: no byte with the top bit */
        memcpy(&word, p, 8);
        high |= word;
    }
    for (; p < end; p++)
        high |= (unsigned char)*p;
    return (high & 0x8080808080808080ull) == 0;
}

PyDoc_STRVAR(feed_chunk_doc,
"feed_chunk(correlator, parser, data, out) -> int\n\n"
"Correlator.feed_lines(parser, lines of data, out) for bytes ``data`` of complete lines\n"
"(each ending with a newline), with the same results; returns the number of lines.\n"
"Non-ASCII lines are decoded as UTF-8 with replacement, as the Python path does.");

static PyObject *feed_chunk(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "feed_chunk(correlator, parser, data, out)");
        return NULL;
    }
    Loop L;
    memset(&L, 0, sizeof L);
    L.corr = args[0];
    L.parser = args[1];
    L.out = args[3];
    Py_buffer view;
    if (!PyList_Check(L.out)) {
        PyErr_SetString(PyExc_TypeError, "out must be a list");
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    long lines = 0;
    if ((L.messages = PyObject_GetAttr(L.corr, s_messages)) == NULL
        || (L.routes = PyObject_GetAttr(L.corr, s_routes)) == NULL
        || (L.route = PyObject_GetAttr(L.corr, s_route)) == NULL
        || (L.open = PyObject_GetAttr(L.corr, s_open)) == NULL
        || (L.start = PyObject_GetAttr(L.corr, s_start)) == NULL
        || (L.feed_lines = PyObject_GetAttr(L.corr, s_feed_lines)) == NULL
        || load_parser_state(&L) < 0 || load_next_sweep(&L) < 0)
        goto fail;
    if (!PyDict_CheckExact(L.messages) || !PyDict_Check(L.routes)) {
        PyErr_SetString(PyExc_TypeError, "correlator._messages and _routes must be dicts");
        goto fail;
    }
    const char *p = view.buf, *end = p + view.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break; /* an unterminated tail is not a line (the caller keeps it) */
        int ascii = is_ascii(p, nl);
        int rc;
        if (ascii) {
            rc = one_line(&L, p, nl - p);
        } else {
            PyObject *line = PyUnicode_DecodeUTF8(p, nl - p, "replace");
            rc = line == NULL ? -1 : hand_over(&L, line);
            Py_XDECREF(line);
        }
        if (rc < 0)
            goto fail;
        if ((++lines & 255) == 0) { /* a store thread may be waiting for the GIL: let it in */
            Py_BEGIN_ALLOW_THREADS
            Py_END_ALLOW_THREADS
        }
        p = nl + 1;
    }
    PyBuffer_Release(&view);
    loop_clear(&L);
    return PyLong_FromLong(lines);
fail:
    PyBuffer_Release(&view);
    loop_clear(&L);
    return NULL;
}

PyDoc_STRVAR(use_types_doc,
"use_types(delivery_type, info_type) -> None\n\n"
"The NamedTuple classes deliveries and their message context are built as.");

static PyObject *use_types(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    for (Py_ssize_t i = 0; i < nargs; i++)
        if (!PyType_Check(args[i])
            || !PyType_IsSubtype((PyTypeObject *)args[i], &PyTuple_Type)) {
            PyErr_SetString(PyExc_TypeError, "use_types() wants tuple subclasses");
            return NULL;
        }
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "use_types(delivery_type, info_type)");
        return NULL;
    }
    Py_XSETREF(delivery_type, Py_NewRef(args[0]));
    Py_XSETREF(info_type, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"use_types", (PyCFunction)(void (*)(void))use_types, METH_FASTCALL, use_types_doc},
    {"feed_chunk", (PyCFunction)(void (*)(void))feed_chunk, METH_FASTCALL, feed_chunk_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_postfix_fast",
    "The Postfix log ingest's hot loop in C (see Correlator.feed_lines).", -1, methods,
    NULL, NULL, NULL, NULL,
};

#define INTERN(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC PyInit__postfix_fast(void)
{
    INTERN(s_messages, "_messages");
    INTERN(s_next_sweep, "_next_sweep");
    INTERN(s_now, "_now");
    INTERN(s_open, "_open");
    INTERN(s_start, "_start");
    INTERN(s_sweep, "_sweep");
    INTERN(s_year, "_year");
    INTERN(s_month, "_month");
    INTERN(s_cache, "_cache");
    INTERN(s_routes, "_routes");
    INTERN(s_route, "_route");
    INTERN(s_recipients, "recipients");
    if ((one = PyLong_FromLong(1)) == NULL)
        return NULL;
    INTERN(s_feed_lines, "feed_lines");
    INTERN(s_last_stamp, "last_stamp");
    INTERN(s_last_time, "last_time");
    INTERN(s_stamp_time, "stamp_time");
    INTERN(s_last_seen, "last_seen");
    INTERN(s_message_id, "message_id");
    INTERN(s_info, "info");
    INTERN(s_sender, "sender");
    INTERN(s_size, "size");
    INTERN(s_nrcpt, "nrcpt");
    INTERN(s_client_name, "client_name");
    INTERN(s_client_ip, "client_ip");
    INTERN(s_sasl_method, "sasl_method");
    INTERN(s_sasl_username, "sasl_username");
    INTERN(s_first_seen, "first_seen");
    INTERN(s_notification_of, "notification_of");
    return PyModule_Create(&module_def);
}
