/* ``DeliveryMapper.rows`` in C for the deliveries its caches already know: the common
 * case of a delivered mail of a known sender through a known relay, with no decision-log
 * row to weigh. Such a delivery becomes its event row here, from the mapper's own caches
 * (read, never written); every other delivery goes to ``DeliveryMapper._row`` unchanged,
 * which fills the caches, counts what it skips and logs. The rows are the same either way
 * (tests/services/ingest/test_mapping_fast.py pins them), only cheaper: the ingest maps ~35,000
 * deliveries a batch while the store thread waits for the GIL.
 *
 * The key is ``Delivery.key``: "pflog:" + 32 hex digits of SHA-256 over the key material
 * (postfix_correlate's docstring); SHA-256 as FIPS 180-4 gives it, here because the
 * property's f-string and hashlib call cost more than all the rest of a row.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Delivery's and MessageInfo's fields, by position (wire/postfix_correlate.py) */
enum { D_TIME = 0, D_HOST = 1, D_QID = 2, D_RCPT = 3, D_STATUS = 4, D_DSN = 6, D_REPLY = 7,
       D_RELAY = 8,
       D_EGRESS = 10, D_MESSAGE = 12, D_SEQ = 18, D_COUNT = 19 };
enum { M_SENDER = 4, M_CLIENT_IP = 8, M_SASL_USERNAME = 10, M_NOTIFICATION_OF = 11,
       M_COUNT = 12 };

static PyObject *s_row, *s_tenants, *s_relay_hosts, *s_cleaned, *s_senders, *s_provider,
    *s_reasons, *s_deferred, *s_hard_bounce, *s_bounced,
    *s_sent, *s_expired, *s_delivered,
    *s_soft_bounce, *s_empty, *seconds_per_day;

/* -- SHA-256 ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t h[8];
    uint8_t block[64];
    size_t fill;
    uint64_t bytes;
} Sha256;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(Sha256 *c, const uint8_t *b)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16
               | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b1 = c->h[1], c1 = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5],
             g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i]
                      + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b1) ^ (a & c1) ^ (b1 & c1));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c1;
        c1 = b1;
        b1 = a;
        a = t1 + t2;
    }
    c->h[0] += a;
    c->h[1] += b1;
    c->h[2] += c1;
    c->h[3] += d;
    c->h[4] += e;
    c->h[5] += f;
    c->h[6] += g;
    c->h[7] += h;
}

static void sha256_init(Sha256 *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->fill = 0;
    c->bytes = 0;
}

static void sha256_update(Sha256 *c, const void *data, size_t n)
{
    const uint8_t *p = data;
    c->bytes += n;
    while (n > 0) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->block + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill == 64) {
            sha256_block(c, c->block);
            c->fill = 0;
        }
    }
}

static void sha256_final(Sha256 *c, uint8_t out[32])
{
    uint64_t bits = c->bytes * 8;
    static const uint8_t zeros[64] = {0x80};
    size_t pad = c->fill < 56 ? 56 - c->fill : 120 - c->fill;
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, zeros, pad);
    sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

/* f"{value}" of a str or None, UTF-8 encoded, into the hash; -1 on an error */
static int hash_text(Sha256 *c, PyObject *value)
{
    if (value == Py_None) {
        sha256_update(c, "None", 4);
        return 0;
    }
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "a key field is not a str");
        return -1;
    }
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(value, &n);
    if (utf8 == NULL)
        return -1;
    sha256_update(c, utf8, (size_t)n);
    return 0;
}

/* Delivery.key of a delivery whose time is a float and recipient a str */
static PyObject *delivery_key(PyObject *d, double time)
{
    Sha256 c;
    sha256_init(&c);
    const char sep = 0x1f;
    if (hash_text(&c, PyTuple_GET_ITEM(d, D_HOST)) < 0)
        return NULL;
    sha256_update(&c, &sep, 1);
    if (hash_text(&c, PyTuple_GET_ITEM(d, D_QID)) < 0)
        return NULL;
    sha256_update(&c, &sep, 1);
    if (hash_text(&c, PyTuple_GET_ITEM(d, D_RCPT)) < 0)
        return NULL;
    sha256_update(&c, &sep, 1);
    if (hash_text(&c, PyTuple_GET_ITEM(d, D_STATUS)) < 0)
        return NULL;
    sha256_update(&c, &sep, 1);
    char *text = PyOS_double_to_string(time, 'f', 6, 0, NULL); /* f"{time:.6f}" */
    if (text == NULL)
        return NULL;
    sha256_update(&c, text, strlen(text));
    PyMem_Free(text);
    sha256_update(&c, &sep, 1);
    PyObject *seq = PyObject_Str(PyTuple_GET_ITEM(d, D_SEQ));
    if (seq == NULL)
        return NULL;
    int rc = hash_text(&c, seq);
    Py_DECREF(seq);
    if (rc < 0)
        return NULL;
    uint8_t digest[32];
    sha256_final(&c, digest);
    static const char hex[] = "0123456789abcdef";
    PyObject *key = PyUnicode_New(6 + 32, 127);
    if (key == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(key);
    memcpy(out, "pflog:", 6);
    for (int i = 0; i < 16; i++) {
        out[6 + 2 * i] = (Py_UCS1)hex[digest[i] >> 4];
        out[7 + 2 * i] = (Py_UCS1)hex[digest[i] & 15];
    }
    return key;
}

PyDoc_STRVAR(key_of_doc, "key_of(delivery) -> str\n\nDelivery.key, computed in C.");

static PyObject *key_of(PyObject *module, PyObject *d)
{
    (void)module;
    if (!PyTuple_Check(d) || PyTuple_GET_SIZE(d) != D_COUNT) {
        PyErr_SetString(PyExc_TypeError, "key_of() wants a Delivery");
        return NULL;
    }
    PyObject *time = PyTuple_GET_ITEM(d, D_TIME), *rcpt = PyTuple_GET_ITEM(d, D_RCPT);
    if (time == Py_None || rcpt == Py_None) {
        PyErr_SetString(PyExc_ValueError, "key_of() wants a time and a recipient");
        return NULL;
    }
    double t = PyFloat_AsDouble(time);
    if (t == -1.0 && PyErr_Occurred())
        return NULL;
    return delivery_key(d, t);
}

/* -- the mapping ------------------------------------------------------------------------- */

typedef struct {
    PyObject *tenants, *relay_hosts, *cleaned, *senders, *provider, *reasons;
} Caches;

/* cache.get(key, "") with "" (a miss) as NULL and no error; a new reference */
static PyObject *cached(PyObject *cache, PyObject *key, int *error)
{
    PyObject *v = PyDict_GetItemWithError(cache, key);
    if (v == NULL) {
        if (PyErr_Occurred())
            *error = 1;
        return NULL;
    }
    if (PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 0)
        return NULL;
    return Py_NewRef(v);
}

static inline int ascii_space(Py_UCS1 c) /* str.split()'s whitespace, in ASCII */
{
    return c == ' ' || (c >= 9 && c <= 13) || (c >= 28 && c <= 31);
}

/* ingest_pipeline._shape for an ASCII reply: the words, each holding an '@', or ten or
 * more characters with a digit, written '#'; NULL (no error) for a non-ASCII reply. */
static PyObject *shape_of(PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text))
        return NULL;
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(text), *e = p + PyUnicode_GET_LENGTH(text);
    Py_ssize_t cap = PyUnicode_GET_LENGTH(text) + 1, n = 0;
    Py_UCS1 *out = PyMem_Malloc((size_t)cap);
    if (out == NULL)
        return PyErr_NoMemory();
    while (p < e) {
        while (p < e && ascii_space(*p))
            p++;
        if (p >= e)
            break;
        const Py_UCS1 *w = p;
        int at = 0, digit = 0;
        while (p < e && !ascii_space(*p)) {
            at |= *p == '@';
            digit |= *p >= '0' && *p <= '9';
            p++;
        }
        if (n > 0)
            out[n++] = ' ';
        if (at || (p - w >= 10 && digit)) {
            out[n++] = '#';
        } else {
            memcpy(out + n, w, (size_t)(p - w));
            n += p - w;
        }
    }
    PyObject *shape = PyUnicode_New(n, 127);
    if (shape != NULL)
        memcpy(PyUnicode_1BYTE_DATA(shape), out, (size_t)n);
    PyMem_Free(out);
    return shape;
}

/* ".".join(relay_host.rsplit(".", 2)[-2:]): the last two labels */
static PyObject *site_of(PyObject *relay_host)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(relay_host);
    Py_ssize_t last = PyUnicode_FindChar(relay_host, '.', 0, n, -1);
    if (last < 0)
        return last == -2 ? NULL : Py_NewRef(relay_host);
    Py_ssize_t before = PyUnicode_FindChar(relay_host, '.', 0, last, -1);
    if (before == -2)
        return NULL;
    return before < 0 ? Py_NewRef(relay_host) : PyUnicode_Substring(relay_host, before + 1, n);
}

/* DeliveryMapper._classify from its cache: the cached (reason, hard), or NULL with no
 * error when the reply was not classified yet (then Python's). A new reference. */
static PyObject *cached_reason(Caches *c, PyObject *d, PyObject *relay_host, int *error)
{
    PyObject *reply = PyTuple_GET_ITEM(d, D_REPLY);
    if (reply != Py_None && !PyUnicode_Check(reply))
        return NULL;
    PyObject *shape = reply == Py_None ? Py_NewRef(s_empty) : shape_of(reply);
    if (shape == NULL) {
        if (PyErr_Occurred())
            *error = 1;
        return NULL;
    }
    PyObject *site = site_of(relay_host), *key = NULL, *found = NULL;
    if (site != NULL)
        key = PyTuple_Pack(3, PyTuple_GET_ITEM(d, D_DSN), site, shape);
    if (key != NULL)
        found = PyDict_GetItemWithError(c->reasons, key);
    if (PyErr_Occurred())
        *error = 1;
    Py_XDECREF(key);
    Py_XDECREF(site);
    Py_DECREF(shape);
    if (found == NULL || !PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2)
        return NULL;
    return Py_NewRef(found);
}

/* The row of ``d`` from the caches alone, or NULL with no error when something is missing
 * (the Python ``_row`` decides), or NULL with an error. */
static PyObject *fast_row(Caches *c, PyObject *d, int *error)
{
    PyObject *time = PyTuple_GET_ITEM(d, D_TIME), *recipient = PyTuple_GET_ITEM(d, D_RCPT),
             *status = PyTuple_GET_ITEM(d, D_STATUS), *info = PyTuple_GET_ITEM(d, D_MESSAGE);
    if (!PyFloat_CheckExact(time) || !PyUnicode_Check(recipient) || !PyUnicode_Check(status)
        || !PyTuple_Check(info) || PyTuple_GET_SIZE(info) != M_COUNT
        || PyTuple_GET_ITEM(info, M_NOTIFICATION_OF) != Py_None)
        return NULL;
    PyObject *kind = NULL, *reason = NULL;
    int classify = 0;
    if (PyUnicode_Compare(status, s_sent) == 0) {
        kind = s_delivered;
        reason = s_delivered; /* the reason of a delivery is the kind's own word */
    } else if (PyUnicode_Compare(status, s_expired) == 0) {
        kind = s_soft_bounce;
        reason = s_expired; /* and an expiry's is the status */
    } else if (PyUnicode_Compare(status, s_deferred) == 0) {
        kind = s_deferred;
        classify = 1;
    } else if (PyUnicode_Compare(status, s_bounced) == 0) {
        classify = 1; /* hard or soft: the classifier says */
    } else {
        return NULL; /* probes and the like: Python's (it counts them) */
    }
    PyObject *out = NULL, *tenant = NULL, *relay_host = NULL, *rdomain = NULL,
             *sdomain = NULL, *ip = NULL, *provider = NULL, *pair = NULL, *day = NULL,
             *key = NULL, *verdict = NULL;
    PyObject *who = PyTuple_Pack(3, PyTuple_GET_ITEM(info, M_SASL_USERNAME),
                                 PyTuple_GET_ITEM(info, M_SENDER),
                                 PyTuple_GET_ITEM(info, M_CLIENT_IP));
    if (who == NULL)
        goto fail;
    tenant = PyDict_GetItemWithError(c->tenants, who);
    Py_DECREF(who);
    if (tenant == NULL || tenant == Py_None) { /* unknown yet, or no tenant: Python's */
        if (PyErr_Occurred())
            goto fail;
        return NULL;
    }
    Py_INCREF(tenant);
    PyObject *relay = PyTuple_GET_ITEM(d, D_RELAY);
    int has_relay = PyObject_IsTrue(relay);
    if (has_relay < 0)
        goto fail;
    if (has_relay) {
        relay_host = PyDict_GetItemWithError(c->relay_hosts, relay);
        if (relay_host == NULL || PyObject_IsTrue(relay_host) != 1) {
            relay_host = NULL;
            goto miss;
        }
        Py_INCREF(relay_host);
    } else {
        relay_host = Py_NewRef(s_empty);
    }
    if (classify) {
        verdict = cached_reason(c, d, relay_host, error);
        if (verdict == NULL)
            goto miss; /* (an error, if any, is flagged) */
        reason = PyTuple_GET_ITEM(verdict, 0);
        if (kind == NULL) {
            int hard = PyObject_IsTrue(PyTuple_GET_ITEM(verdict, 1));
            if (hard < 0)
                goto fail;
            kind = hard ? s_hard_bounce : s_soft_bounce;
        }
    }
    /* the recipient's domain: recipient[rfind("@") + 1:], cleaned (cache) */
    Py_ssize_t at = PyUnicode_FindChar(recipient, '@', 0, PyUnicode_GET_LENGTH(recipient), -1);
    if (at == -2)
        goto fail;
    if (at >= 0) {
        PyObject *part = PyUnicode_Substring(recipient, at + 1, PyUnicode_GET_LENGTH(recipient));
        if (part == NULL)
            goto fail;
        int err = 0;
        rdomain = cached(c->cleaned, part, &err); /* _clean(): None is a cached value */
        Py_DECREF(part);
        if (err)
            goto fail;
        if (rdomain == NULL)
            goto miss;
    } else {
        rdomain = Py_NewRef(Py_None);
    }
    PyObject *sender = PyTuple_GET_ITEM(info, M_SENDER);
    int has_sender = PyObject_IsTrue(sender);
    if (has_sender < 0)
        goto fail;
    if (has_sender) {
        sdomain = PyDict_GetItemWithError(c->senders, sender); /* None is a value */
        if (sdomain == NULL || (PyUnicode_Check(sdomain) && PyUnicode_GET_LENGTH(sdomain) == 0)) {
            if (PyErr_Occurred())
                goto fail;
            sdomain = NULL;
            goto miss;
        }
        Py_INCREF(sdomain);
    } else {
        sdomain = Py_NewRef(Py_None);
    }
    PyObject *egress = PyTuple_GET_ITEM(d, D_EGRESS);
    int has_ip = PyObject_IsTrue(egress);
    if (has_ip < 0)
        goto fail;
    if (has_ip) {
        ip = PyDict_GetItemWithError(c->cleaned, egress); /* _clean(ip): None is a value */
        if (ip == NULL || (PyUnicode_Check(ip) && PyUnicode_GET_LENGTH(ip) == 0)) {
            if (PyErr_Occurred())
                goto fail;
            ip = NULL;
            goto miss;
        }
        Py_INCREF(ip);
    } else {
        ip = Py_NewRef(Py_None);
    }
    pair = PyTuple_Pack(2, rdomain, relay_host);
    if (pair == NULL)
        goto fail;
    provider = PyDict_GetItemWithError(c->provider, pair);
    if (provider == NULL || PyObject_IsTrue(provider) != 1) {
        if (PyErr_Occurred())
            goto fail;
        provider = NULL;
        goto miss;
    }
    Py_INCREF(provider);
    PyObject *days = PyNumber_FloorDivide(time, seconds_per_day); /* int(time // 86400) */
    if (days == NULL)
        goto fail;
    day = PyNumber_Long(days);
    Py_DECREF(days);
    if (day == NULL)
        goto fail;
    key = delivery_key(d, PyFloat_AS_DOUBLE(time));
    if (key == NULL)
        goto fail;
    /* (key, time, day, kind, tenant, provider, ip, sending_domain, recipient_domain, reason) */
    out = PyTuple_Pack(10, key, time, day, kind, tenant, provider, ip, sdomain, rdomain,
                       reason);
    if (out == NULL)
        goto fail;
    goto done;
fail:
    *error = 1;
miss:
    Py_CLEAR(out);
done:
    Py_XDECREF(tenant);
    Py_XDECREF(relay_host);
    Py_XDECREF(rdomain);
    Py_XDECREF(sdomain);
    Py_XDECREF(ip);
    Py_XDECREF(provider);
    Py_XDECREF(pair);
    Py_XDECREF(day);
    Py_XDECREF(key);
    Py_XDECREF(verdict);
    return out;
}

static int load_caches(PyObject *mapper, Caches *c)
{
    memset(c, 0, sizeof *c);
    PyObject **slots[] = {&c->tenants, &c->relay_hosts, &c->cleaned, &c->senders,
                          &c->provider, &c->reasons};
    PyObject *names[] = {s_tenants, s_relay_hosts, s_cleaned, s_senders, s_provider,
                         s_reasons};
    for (int i = 0; i < 6; i++) {
        *slots[i] = PyObject_GetAttr(mapper, names[i]);
        if (*slots[i] == NULL)
            return -1;
        if (!PyDict_Check(*slots[i])) {
            PyErr_SetString(PyExc_TypeError, "the mapper's caches must be dicts");
            return -1;
        }
    }
    return 0;
}

static void clear_caches(Caches *c)
{
    Py_CLEAR(c->tenants);
    Py_CLEAR(c->relay_hosts);
    Py_CLEAR(c->cleaned);
    Py_CLEAR(c->senders);
    Py_CLEAR(c->provider);
    Py_CLEAR(c->reasons);
}

PyDoc_STRVAR(map_rows_doc,
"map_rows(mapper, deliveries, decisions, out, sources) -> None\n\n"
"DeliveryMapper.rows: each delivery's row appended to ``out`` (and, when ``sources`` is\n"
"a list, the delivery to it), from the mapper's caches where they hold everything the\n"
"row needs, else by ``mapper._row(delivery, decisions.get(queue_id))``.");

static PyObject *map_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5 || !PyDict_Check(args[2]) || !PyList_Check(args[3])
        || (args[4] != Py_None && !PyList_Check(args[4]))) {
        PyErr_SetString(PyExc_TypeError,
                        "map_rows(mapper, deliveries, decisions: dict, out: list, "
                        "sources: list | None)");
        return NULL;
    }
    PyObject *mapper = args[0], *decisions = args[2], *out = args[3], *sources = args[4];
    PyObject *seq = PySequence_Fast(args[1], "deliveries must be a sequence");
    if (seq == NULL)
        return NULL;
    Caches c;
    PyObject *row_of = NULL, *result = NULL;
    if (load_caches(mapper, &c) < 0 || (row_of = PyObject_GetAttr(mapper, s_row)) == NULL)
        goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    int check_decisions = PyDict_GET_SIZE(decisions) > 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = items[i], *row = NULL;
        if ((i & 1023) == 1023) { /* a store thread may be waiting for the GIL: let it in */
            Py_BEGIN_ALLOW_THREADS
            Py_END_ALLOW_THREADS
        }
        if (!PyTuple_Check(d) || PyTuple_GET_SIZE(d) != D_COUNT) {
            PyErr_Format(PyExc_TypeError, "delivery %zd is not a Delivery", i);
            goto done;
        }
        PyObject *rows = NULL;
        if (check_decisions) {
            rows = PyDict_GetItemWithError(decisions, PyTuple_GET_ITEM(d, D_QID));
            if (rows == NULL && PyErr_Occurred())
                goto done;
        }
        int error = 0;
        if (rows == NULL || PyObject_IsTrue(rows) == 0)
            row = fast_row(&c, d, &error);
        if (error)
            goto done;
        if (row == NULL) {
            PyObject *call[] = {d, rows ? rows : Py_None};
            row = PyObject_Vectorcall(row_of, call, 2, NULL);
            if (row == NULL)
                goto done;
            if (row == Py_None) {
                Py_DECREF(row);
                continue;
            }
        }
        int rc = PyList_Append(out, row);
        Py_DECREF(row);
        if (rc < 0 || (sources != Py_None && PyList_Append(sources, d) < 0))
            goto done;
    }
    result = Py_NewRef(Py_None);
done:
    clear_caches(&c);
    Py_XDECREF(row_of);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef methods[] = {
    {"map_rows", (PyCFunction)(void (*)(void))map_rows, METH_FASTCALL, map_rows_doc},
    {"key_of", key_of, METH_O, key_of_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_map_fast",
    "DeliveryMapper.rows in C for deliveries its caches know (see ingest_pipeline).", -1,
    methods, NULL, NULL, NULL, NULL,
};

#define INTERN(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC PyInit__map_fast(void)
{
    INTERN(s_row, "_row");
    INTERN(s_tenants, "_tenants");
    INTERN(s_relay_hosts, "_relay_hosts");
    INTERN(s_cleaned, "_cleaned");
    INTERN(s_senders, "_senders");
    INTERN(s_provider, "_provider");
    INTERN(s_reasons, "_reasons");
    INTERN(s_deferred, "deferred");
    INTERN(s_hard_bounce, "hard_bounce");
    INTERN(s_bounced, "bounced");
    INTERN(s_sent, "sent");
    INTERN(s_expired, "expired");
    INTERN(s_delivered, "delivered");
    INTERN(s_soft_bounce, "soft_bounce");
    INTERN(s_empty, "");
    if ((seconds_per_day = PyLong_FromLong(86400)) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
