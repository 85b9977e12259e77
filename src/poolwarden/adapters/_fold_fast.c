/* ``event_rows.fold_rows`` in C: event rows in, day-counter deltas out, with the same
 * result as the Python function (tests/adapters pin the two to each other and to
 * ``Ledger.add``). The log ingest folds ~35,000 rows a batch while the parser thread waits
 * for the GIL; the Python version's sort, Counters and merges cost ten times this.
 *
 * A bucket is (scope, scope id, provider, day). Its key is kept as the row's own string
 * objects (the IP|tenant scope as the pair, joined only once per bucket for the output)
 * in an open-addressing table hashed with the strings' cached hashes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

enum { TENANT, IP, IP_TENANT, DOMAIN, SCOPES };
#define MAX_FIELDS 16

typedef struct {
    int scope;
    long day;
    PyObject *id, *id2, *provider; /* borrowed from the rows (alive for the call) */
    Py_hash_t hash;
    Py_ssize_t slot; /* index into counts, -1 when the entry is empty */
} Entry;

typedef struct {
    Entry *entries;
    size_t mask, used;
    long *counts; /* used * width */
    int width;
    Entry **order; /* entries in the order first seen */
} Table;

static int same_str(PyObject *a, PyObject *b)
{
    if (a == b)
        return 1;
    if (a == NULL || b == NULL)
        return 0;
    return PyUnicode_Compare(a, b) == 0 && !PyErr_Occurred();
}

static int grow(Table *t);

/* The counts of a bucket (made on first use); h1..h3 are the strings' hashes. */
static long *bucket(Table *t, int scope, PyObject *id, PyObject *id2, PyObject *provider,
                    long day, Py_hash_t h1, Py_hash_t h2, Py_hash_t h3)
{
    Py_uhash_t h = (Py_uhash_t)h1 * 1000003u;
    h = (h ^ (Py_uhash_t)h2) * 1000003u;
    h = (h ^ (Py_uhash_t)h3) * 1000003u;
    h = (h ^ (Py_uhash_t)day) * 1000003u ^ (Py_uhash_t)scope;
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        Entry *e = &t->entries[i];
        if (e->slot < 0) {
            if ((t->used + 1) * 2 > t->mask + 1) {
                if (grow(t) < 0)
                    return NULL;
                return bucket(t, scope, id, id2, provider, day, h1, h2, h3);
            }
            *e = (Entry){scope, day, id, id2, provider, (Py_hash_t)h, (Py_ssize_t)t->used};
            t->order[t->used] = e;
            memset(&t->counts[t->used * t->width], 0, sizeof(long) * (size_t)t->width);
            return &t->counts[t->used++ * t->width];
        }
        if (e->hash == (Py_hash_t)h && e->scope == scope && e->day == day
            && same_str(e->id, id) && same_str(e->id2, id2)
            && same_str(e->provider, provider))
            return &t->counts[e->slot * t->width];
        if (PyErr_Occurred())
            return NULL;
    }
}

static int grow(Table *t)
{
    size_t size = (t->mask + 1) * 2;
    Entry *entries = PyMem_Malloc(size * sizeof(Entry));
    Entry **order = PyMem_Malloc(size / 2 * sizeof(Entry *));
    long *counts = PyMem_Malloc(size / 2 * sizeof(long) * (size_t)t->width);
    if (entries == NULL || order == NULL || counts == NULL) {
        PyMem_Free(entries);
        PyMem_Free(order);
        PyMem_Free(counts);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < size; i++)
        entries[i].slot = -1;
    for (size_t n = 0; n < t->used; n++) { /* re-insert in first-seen order */
        Entry *old = t->order[n];
        size_t i = (Py_uhash_t)old->hash & (size - 1);
        while (entries[i].slot >= 0)
            i = (i + 1) & (size - 1);
        entries[i] = *old;
        order[n] = &entries[i];
    }
    memcpy(counts, t->counts, t->used * sizeof(long) * (size_t)t->width);
    PyMem_Free(t->entries);
    PyMem_Free(t->order);
    PyMem_Free(t->counts);
    t->entries = entries;
    t->order = order;
    t->counts = counts;
    t->mask = size - 1;
    return 0;
}

static int table_init(Table *t, int width)
{
    memset(t, 0, sizeof *t);
    t->width = width;
    t->mask = 1023;
    t->entries = PyMem_Malloc((t->mask + 1) * sizeof(Entry));
    t->order = PyMem_Malloc((t->mask + 1) / 2 * sizeof(Entry *));
    t->counts = PyMem_Malloc((t->mask + 1) / 2 * sizeof(long) * (size_t)width);
    if (t->entries == NULL || t->order == NULL || t->counts == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i <= t->mask; i++)
        t->entries[i].slot = -1;
    return 0;
}

static void table_free(Table *t)
{
    PyMem_Free(t->entries);
    PyMem_Free(t->order);
    PyMem_Free(t->counts);
}

typedef struct {
    int scope;
    PyObject *id, *id2;
    Py_hash_t h1, h2;
} ScopeKey;

static int truthy_str(PyObject *v) /* the Python fold's ``if ip`` on str | None */
{
    return v != Py_None && PyObject_IsTrue(v) == 1;
}

/* f"{ip}|{tenant}": copied straight when both are ASCII (as they are in practice) */
static PyObject *join_pair(PyObject *a, PyObject *b)
{
    if (!PyUnicode_IS_ASCII(a) || !PyUnicode_IS_ASCII(b))
        return PyUnicode_FromFormat("%U|%U", a, b);
    Py_ssize_t na = PyUnicode_GET_LENGTH(a), nb = PyUnicode_GET_LENGTH(b);
    PyObject *s = PyUnicode_New(na + 1 + nb, 127);
    if (s == NULL)
        return NULL;
    Py_UCS1 *p = PyUnicode_1BYTE_DATA(s);
    memcpy(p, PyUnicode_1BYTE_DATA(a), (size_t)na);
    p[na] = '|';
    memcpy(p + na + 1, PyUnicode_1BYTE_DATA(b), (size_t)nb);
    return s;
}

/* A delta's sort key: UTF-8 bytes order as str code points do. */
typedef struct {
    long day;
    int scope;
    const char *id, *provider;
    Py_ssize_t id_n, provider_n;
    PyObject *item;
} SortKey;

static int bytes_cmp(const char *a, Py_ssize_t an, const char *b, Py_ssize_t bn)
{
    int c = memcmp(a, b, (size_t)(an < bn ? an : bn));
    return c != 0 ? c : (an > bn) - (an < bn);
}

static int by_counter_key(const void *x, const void *y)
{
    const SortKey *a = x, *b = y;
    if (a->day != b->day)
        return a->day < b->day ? -1 : 1;
    if (a->scope != b->scope)
        return a->scope < b->scope ? -1 : 1;
    int c = bytes_cmp(a->id, a->id_n, b->id, b->id_n);
    return c != 0 ? c : bytes_cmp(a->provider, a->provider_n, b->provider, b->provider_n);
}

/* Sort the deltas in the counters' key order (day, scope, scope_id, provider), as the
 * Python version gives them: upserts in that order touch each page once. */
static int sort_by_counter_key(PyObject *out, PyObject *scopes)
{
    Py_ssize_t n = PyList_GET_SIZE(out);
    int rank[SCOPES];
    for (int i = 0; i < SCOPES; i++) { /* the scopes' own order, as str compares them */
        rank[i] = 0;
        for (int j = 0; j < SCOPES; j++)
            if (PyUnicode_Compare(PyTuple_GET_ITEM(scopes, j), PyTuple_GET_ITEM(scopes, i)) < 0)
                rank[i]++;
    }
    if (PyErr_Occurred())
        return -1;
    SortKey *keys = PyMem_Malloc(sizeof(SortKey) * (size_t)(n ? n : 1));
    if (keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(out, i);
        SortKey *k = &keys[i];
        k->item = item;
        k->day = PyLong_AsLong(PyTuple_GET_ITEM(item, 3));
        k->scope = 0;
        for (int j = 0; j < SCOPES; j++)
            if (PyTuple_GET_ITEM(item, 0) == PyTuple_GET_ITEM(scopes, j))
                k->scope = rank[j];
        k->id = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(item, 1), &k->id_n);
        k->provider = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(item, 2), &k->provider_n);
        if (k->id == NULL || k->provider == NULL || (k->day == -1 && PyErr_Occurred())) {
            PyMem_Free(keys);
            return -1;
        }
    }
    qsort(keys, (size_t)n, sizeof(SortKey), by_counter_key);
    for (Py_ssize_t i = 0; i < n; i++) /* a permutation: references move, none change */
        PyList_SET_ITEM(out, i, keys[i].item);
    PyMem_Free(keys);
    return 0;
}

PyDoc_STRVAR(fold_rows_doc,
"fold_rows(rows, positions, width, scopes, all_providers) -> list[tuple]\n\n"
"The counter deltas of event rows: one (scope, scope_id, provider, day, *counts) per\n"
"bucket, sorted by (day, scope, scope_id, provider). ``positions`` maps a kind to its count's index (< width); ``scopes`` gives the\n"
"tenant, ip, ip_tenant and domain scope values; ``all_providers`` the '*' provider.");

static PyObject *fold_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5 || !PyDict_Check(args[1]) || !PyTuple_Check(args[3])
        || PyTuple_GET_SIZE(args[3]) != SCOPES) {
        PyErr_SetString(PyExc_TypeError,
                        "fold_rows(rows, positions: dict, width: int, scopes: 4-tuple, "
                        "all_providers: str)");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "rows must be a sequence");
    if (seq == NULL)
        return NULL;
    PyObject *positions = args[1], *scopes = args[3], *every = args[4];
    long width = PyLong_AsLong(args[2]);
    if (width < 1 || width > MAX_FIELDS) {
        Py_DECREF(seq);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "width out of range");
        return NULL;
    }
    Table t;
    PyObject *out = NULL;
    Py_hash_t h_every = PyObject_Hash(every);
    if (table_init(&t, (int)width) < 0 || h_every == -1)
        goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *row = items[r];
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 8) {
            PyErr_Format(PyExc_TypeError, "row %zd is not an event row tuple", r);
            goto done;
        }
        long day = PyLong_AsLong(PyTuple_GET_ITEM(row, 2));
        if (day == -1 && PyErr_Occurred())
            goto done;
        PyObject *at = PyDict_GetItemWithError(positions, PyTuple_GET_ITEM(row, 3));
        if (at == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_KeyError, "row %zd: unknown kind %R", r,
                             PyTuple_GET_ITEM(row, 3));
            goto done;
        }
        long field = PyLong_AsLong(at);
        if (field < 0 || field >= width) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a kind's position is out of range");
            goto done;
        }
        PyObject *tenant = PyTuple_GET_ITEM(row, 4), *provider = PyTuple_GET_ITEM(row, 5),
                 *ip = PyTuple_GET_ITEM(row, 6), *domain = PyTuple_GET_ITEM(row, 7);
        Py_hash_t h_tenant = PyObject_Hash(tenant), h_provider = PyObject_Hash(provider),
                  h_ip = 0, h_domain = 0;
        ScopeKey keys[4];
        int k = 0;
        keys[k++] = (ScopeKey){TENANT, tenant, NULL, h_tenant, 0};
        if (truthy_str(ip)) {
            h_ip = PyObject_Hash(ip);
            keys[k++] = (ScopeKey){IP, ip, NULL, h_ip, 0};
            keys[k++] = (ScopeKey){IP_TENANT, ip, tenant, h_ip, h_tenant};
        }
        if (truthy_str(domain)) {
            h_domain = PyObject_Hash(domain);
            keys[k++] = (ScopeKey){DOMAIN, domain, NULL, h_domain, 0};
        }
        if (h_tenant == -1 || h_provider == -1 || h_ip == -1 || h_domain == -1)
            goto done;
        for (int i = 0; i < k; i++) {
            PyObject *providers[2] = {provider, every};
            Py_hash_t hashes[2] = {h_provider, h_every};
            for (int j = 0; j < 2; j++) {
                long *counts = bucket(&t, keys[i].scope, keys[i].id, keys[i].id2,
                                      providers[j], day, keys[i].h1, keys[i].h2, hashes[j]);
                if (counts == NULL)
                    goto done;
                counts[field]++;
            }
        }
    }
    if ((out = PyList_New((Py_ssize_t)t.used)) == NULL)
        goto done;
    for (size_t i = 0; i < t.used; i++) {
        Entry *e = t.order[i];
        PyObject *item = PyTuple_New(4 + width);
        if (item == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, item);
        PyObject *id = e->id2 == NULL ? Py_NewRef(e->id) : join_pair(e->id, e->id2);
        PyObject *day = PyLong_FromLong(e->day);
        if (id == NULL || day == NULL) {
            Py_XDECREF(id);
            Py_XDECREF(day);
            Py_CLEAR(out);
            goto done;
        }
        PyTuple_SET_ITEM(item, 0, Py_NewRef(PyTuple_GET_ITEM(scopes, e->scope)));
        PyTuple_SET_ITEM(item, 1, id);
        PyTuple_SET_ITEM(item, 2, Py_NewRef(e->provider));
        PyTuple_SET_ITEM(item, 3, day);
        for (long f = 0; f < width; f++) {
            PyObject *c = PyLong_FromLong(t.counts[(size_t)e->slot * (size_t)width + f]);
            if (c == NULL) {
                Py_CLEAR(out);
                goto done;
            }
            PyTuple_SET_ITEM(item, 4 + f, c);
        }
    }
    if (sort_by_counter_key(out, scopes) < 0)
        Py_CLEAR(out);
done:
    table_free(&t);
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(scan_rows_doc,
"scan_rows(rows, kinds, text_columns, reason_column, max_reason) -> int\n\n"
"What event_rows.unique_rows must do with ``rows``: 0 nothing (all plain and every key\n"
"once), 1 drop repeated keys, 2 look closer (a NUL character, a reason over\n"
"``max_reason``, a kind not in ``kinds``, or a value that is not a str or None).");

static PyObject *scan_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5 || !PyAnySet_Check(args[1]) || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "scan_rows(rows, kinds: set, text_columns: tuple, "
                                         "reason_column: int, max_reason: int)");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "rows must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t reason = PyLong_AsSsize_t(args[3]), max_reason = PyLong_AsSsize_t(args[4]);
    Py_ssize_t ncols = PyTuple_GET_SIZE(args[2]);
    PyObject *keys = PySet_New(NULL);
    long verdict = 0;
    if (keys == NULL || PyErr_Occurred())
        goto fail;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t r = 0; r < n && verdict < 2; r++) {
        PyObject *row = items[r];
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) <= reason) {
            verdict = 2;
            break;
        }
        for (Py_ssize_t c = 0; c < ncols; c++) {
            Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(args[2], c));
            if (at < 0 || at >= PyTuple_GET_SIZE(row)) {
                if (!PyErr_Occurred())
                    verdict = 2;
                break;
            }
            PyObject *v = PyTuple_GET_ITEM(row, at);
            if (v == Py_None)
                continue;
            if (!PyUnicode_Check(v) || PyUnicode_FindChar(v, 0, 0, PyUnicode_GET_LENGTH(v), 1)
                                           != -1) {
                verdict = 2; /* a NUL (or an error, -2: looked at closer in Python) */
                break;
            }
        }
        if (PyErr_Occurred())
            goto fail;
        PyObject *why = PyTuple_GET_ITEM(row, reason);
        if (verdict < 2 && (!PyUnicode_Check(why) || PyUnicode_GET_LENGTH(why) > max_reason))
            verdict = 2;
        int known = verdict < 2 ? PySet_Contains(args[1], PyTuple_GET_ITEM(row, 3)) : 1;
        if (known < 0)
            goto fail;
        if (!known)
            verdict = 2;
        if (verdict < 2) {
            Py_ssize_t before = PySet_GET_SIZE(keys);
            if (PySet_Add(keys, PyTuple_GET_ITEM(row, 0)) < 0)
                goto fail;
            if (PySet_GET_SIZE(keys) == before)
                verdict = 1;
        }
    }
    Py_DECREF(keys);
    Py_DECREF(seq);
    return PyLong_FromLong(verdict);
fail:
    Py_XDECREF(keys);
    Py_DECREF(seq);
    return NULL;
}

PyDoc_STRVAR(flat_values_doc,
"flat_values(rows) -> list\n\nlist(chain.from_iterable(rows)) for a sequence of tuples:\n"
"one statement's parameters.");

static PyObject *flat_values(PyObject *module, PyObject *rows)
{
    (void)module;
    PyObject *seq = PySequence_Fast(rows, "rows must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), total = 0;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyTuple_Check(items[i])) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_TypeError, "row %zd is not a tuple", i);
            return NULL;
        }
        total += PyTuple_GET_SIZE(items[i]);
    }
    PyObject *out = PyList_New(total);
    if (out != NULL) {
        Py_ssize_t k = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(items[i]); j++)
                PyList_SET_ITEM(out, k++, Py_NewRef(PyTuple_GET_ITEM(items[i], j)));
    }
    Py_DECREF(seq);
    return out;
}

static PyMethodDef methods[] = {
    {"flat_values", flat_values, METH_O, flat_values_doc},
    {"scan_rows", (PyCFunction)(void (*)(void))scan_rows, METH_FASTCALL, scan_rows_doc},
    {"fold_rows", (PyCFunction)(void (*)(void))fold_rows, METH_FASTCALL, fold_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fold_fast",
    "event_rows.fold_rows in C (the log ingest's counter deltas).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fold_fast(void) { return PyModule_Create(&module_def); }
