# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The JSON reader's checks at C speed (:func:`escape_fhir.fhir.jsonio._fast_loads`).

* :func:`scan` reads the text once and gives two counts: its ``{`` and ``[`` bytes, strings included --
  the count that ``bounds.MAX_CONTAINERS`` and the depth check read, with exactly the meaning of the
  Python path's ``raw.count(b"{") + raw.count(b"[")`` -- and its colons outside strings.
* :func:`members` counts the members of every dict of the tree msgspec made of the text.

In valid JSON (msgspec accepted the text) a colon outside a string is always a name separator, one per
object member, so the two counts are equal exactly when no member was dropped, and a duplicate key drops
one. Colons inside strings, written or escaped as ``\\u003a``, are not counted at all.

The scan takes the text 64 bytes at a time: a bit mask each of its quotes, colons and backslashes (SSE2
compares where the compiler has them, as on every x86-64; a plain loop elsewhere, the same masks). A quote
is escaped when an odd run of backslashes precedes it (looked up only where a backslash comes just before
a quote, which is rare). The prefix XOR of the remaining quotes marks the bytes inside strings, carried
from one block to the next, and the colons outside them are counted. Multi-byte UTF-8 sequences never
contain an ASCII byte, so the bytes are read as they are. On a text that is not valid JSON the counts mean
nothing, but the scan still ends within the text (the caller uses them only once msgspec accepted it).

The tree walk is iterative (the depth is not yet bounded when it runs) and reads each dict's size and
values with ``PyDict_Next``, without calling Python code.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport PyObject

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif

    /* Where the scan is: the text's first byte (a backslash run never looks before it), whether the
       previous block ended inside a string and with a backslash, and the colons counted so far. */
    typedef struct {
        const unsigned char *first;
        uint64_t inside;
        uint64_t backslash_before;
        Py_ssize_t colons;
    } jsonscan_state;

    static inline uint64_t jsonscan_popcount(uint64_t x) {
        /* no popcnt instruction is assumed (the extension is built for the baseline processor) */
        x = x - ((x >> 1) & 0x5555555555555555ULL);
        x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
        x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
        return (x * 0x0101010101010101ULL) >> 56;
    }

    static inline uint64_t jsonscan_prefix_xor(uint64_t x) {
        /* bit i: the XOR of bits 0..i, i.e. set from an opening quote up to (not with) its closing one */
        x ^= x << 1;
        x ^= x << 2;
        x ^= x << 4;
        x ^= x << 8;
        x ^= x << 16;
        x ^= x << 32;
        return x;
    }

    /* One block of 64 bytes at `base` in the text, given its masks: counts the colons outside strings. */
    static inline void jsonscan_block(jsonscan_state *s, const unsigned char *base, uint64_t quote,
                                      uint64_t colon, uint64_t backslash) {
        uint64_t inside;
        if (backslash | s->backslash_before) {
            uint64_t candidates = quote & ((backslash << 1) | s->backslash_before);
            while (candidates) {
                int k = __builtin_ctzll(candidates);
                const unsigned char *back = base + k;
                while (back > s->first && back[-1] == '\\\\')
                    back--;
                if ((base + k - back) & 1)
                    quote &= ~((uint64_t)1 << k);
                candidates &= candidates - 1;
            }
            s->backslash_before = backslash >> 63;
        }
        inside = jsonscan_prefix_xor(quote) ^ s->inside;
        s->inside = (uint64_t)0 - (inside >> 63);
        colon &= ~inside;
        if (colon)
            s->colons += (Py_ssize_t)jsonscan_popcount(colon);
    }

    /* The masks of one block by a plain loop: what jsonscan_scan does where SSE2 is missing, and what
       the tests compare its SSE2 masks with. */
    static inline Py_ssize_t jsonscan_masks(const unsigned char *b, uint64_t *quote, uint64_t *colon,
                                            uint64_t *backslash) {
        uint64_t q = 0, c = 0, s = 0;
        Py_ssize_t openers = 0;
        int i;
        for (i = 0; i < 64; i++) {
            unsigned char byte = b[i];
            q |= (uint64_t)(byte == '"') << i;
            c |= (uint64_t)(byte == ':') << i;
            s |= (uint64_t)(byte == '\\\\') << i;
            openers += (byte | 0x20) == 0x7B;  /* '{' and '[' differ only in bit 0x20 */
        }
        *quote = q;
        *colon = c;
        *backslash = s;
        return openers;
    }

    static void jsonscan_scan_portable(const unsigned char *p, Py_ssize_t n, Py_ssize_t *openers,
                                       Py_ssize_t *colons) {
        jsonscan_state s = {p, 0, 0, 0};
        unsigned char tail[64];
        uint64_t quote, colon, backslash;
        Py_ssize_t count = 0, i;
        for (i = 0; i < n; i += 64) {
            const unsigned char *b = p + i;
            if (n - i < 64) {
                memset(tail, 0, sizeof tail);
                memcpy(tail, b, (size_t)(n - i));
                b = tail;
            }
            count += jsonscan_masks(b, &quote, &colon, &backslash);
            jsonscan_block(&s, p + i, quote, colon, backslash);
        }
        *openers = count;
        *colons = s.colons;
    }

    #if defined(__SSE2__)
    static inline uint64_t jsonscan_equal(__m128i a, __m128i b, __m128i c, __m128i d, __m128i x) {
        uint64_t m0 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a, x));
        uint64_t m1 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, x));
        uint64_t m2 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(c, x));
        uint64_t m3 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(d, x));
        return m0 | (m1 << 16) | (m2 << 32) | (m3 << 48);
    }

    static Py_ssize_t jsonscan_lanes(__m128i lanes) {
        __m128i sums = _mm_sad_epu8(lanes, _mm_setzero_si128());
        return _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_unpackhi_epi64(sums, sums));
    }

    static void jsonscan_scan(const unsigned char *p, Py_ssize_t n, Py_ssize_t *openers, Py_ssize_t *colons) {
        jsonscan_state s = {p, 0, 0, 0};
        const __m128i quotes = _mm_set1_epi8('"'), colon_bytes = _mm_set1_epi8(':');
        const __m128i backslashes = _mm_set1_epi8('\\\\');
        const __m128i bit = _mm_set1_epi8(0x20), brace = _mm_set1_epi8(0x7B);
        /* Per byte lane, the openers of the blocks since the last sum: at most 4 a block, summed every 63. */
        __m128i lanes = _mm_setzero_si128();
        unsigned char tail[64];
        Py_ssize_t count = 0, i;
        int pending = 0;
        for (i = 0; i < n; i += 64) {
            const unsigned char *b = p + i;
            __m128i v0, v1, v2, v3;
            uint64_t backslash = 0;
            if (n - i < 64) {
                memset(tail, 0, sizeof tail);
                memcpy(tail, b, (size_t)(n - i));
                b = tail;
            }
            v0 = _mm_loadu_si128((const __m128i *)b);
            v1 = _mm_loadu_si128((const __m128i *)(b + 16));
            v2 = _mm_loadu_si128((const __m128i *)(b + 32));
            v3 = _mm_loadu_si128((const __m128i *)(b + 48));
            lanes = _mm_sub_epi8(lanes, _mm_cmpeq_epi8(_mm_or_si128(v0, bit), brace));
            lanes = _mm_sub_epi8(lanes, _mm_cmpeq_epi8(_mm_or_si128(v1, bit), brace));
            lanes = _mm_sub_epi8(lanes, _mm_cmpeq_epi8(_mm_or_si128(v2, bit), brace));
            lanes = _mm_sub_epi8(lanes, _mm_cmpeq_epi8(_mm_or_si128(v3, bit), brace));
            if (++pending == 63) {
                count += jsonscan_lanes(lanes);
                lanes = _mm_setzero_si128();
                pending = 0;
            }
            if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v0, backslashes),
                                                            _mm_cmpeq_epi8(v1, backslashes)),
                                               _mm_or_si128(_mm_cmpeq_epi8(v2, backslashes),
                                                            _mm_cmpeq_epi8(v3, backslashes)))))
                backslash = jsonscan_equal(v0, v1, v2, v3, backslashes);
            jsonscan_block(&s, p + i, jsonscan_equal(v0, v1, v2, v3, quotes),
                           jsonscan_equal(v0, v1, v2, v3, colon_bytes), backslash);
        }
        *openers = count + jsonscan_lanes(lanes);
        *colons = s.colons;
    }
    #define JSONSCAN_SIMD 1
    #else
    #define jsonscan_scan jsonscan_scan_portable
    #define JSONSCAN_SIMD 0
    #endif
    """
    void jsonscan_scan(const unsigned char* p, Py_ssize_t n, Py_ssize_t* openers, Py_ssize_t* colons) nogil
    void jsonscan_scan_portable(const unsigned char* p, Py_ssize_t n, Py_ssize_t* openers, Py_ssize_t* colons) nogil
    int JSONSCAN_SIMD

cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        pass
    PyTypeObject PyDict_Type
    PyTypeObject PyList_Type
    PyTypeObject* Py_TYPE(PyObject*)
    Py_ssize_t dict_size "PyDict_GET_SIZE"(PyObject*)
    int dict_next "PyDict_Next"(PyObject*, Py_ssize_t*, PyObject**, PyObject**)
    Py_ssize_t list_size "PyList_GET_SIZE"(PyObject*)
    PyObject* list_item "PyList_GET_ITEM"(PyObject*, Py_ssize_t)

__all__ = ["members", "scan"]

#: Whether :func:`scan` uses SSE2 (else it is the plain loop of :func:`scan_portable`).
SIMD = bool(JSONSCAN_SIMD)

cdef enum:
    # Entries of the walk's stack kept on the C stack; a tree with more containers waiting grows it on the heap.
    LOCAL_STACK = 64


def scan(raw) -> tuple:
    """``(openers, colons)`` of the bytes ``raw``: its ``{`` and ``[`` bytes, inside strings too, and its
    colons outside strings (meaningful when ``raw`` is valid JSON)."""
    cdef Py_ssize_t openers, colons
    if not PyBytes_Check(raw):  # bytes or a subclass of it, as jsonio.loads takes
        raise TypeError("bytes expected")
    jsonscan_scan(<const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), &openers, &colons)
    return openers, colons


def scan_portable(raw) -> tuple:
    """:func:`scan` by the plain loop (the tests compare the two)."""
    cdef Py_ssize_t openers, colons
    if not PyBytes_Check(raw):
        raise TypeError("bytes expected")
    jsonscan_scan_portable(<const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), &openers, &colons)
    return openers, colons


def members(dict obj not None) -> int:
    """The members of every dict in the tree under ``obj`` (dicts and lists as msgspec makes them; any other
    value is a leaf)."""
    return count_members(<PyObject*>obj)


cdef Py_ssize_t count_members(PyObject* root) except -1:
    cdef PyObject* local[LOCAL_STACK]
    cdef PyObject** stack = local
    cdef Py_ssize_t capacity = LOCAL_STACK
    cdef Py_ssize_t top = 1
    cdef Py_ssize_t total = 0
    cdef Py_ssize_t pos, i, size
    cdef PyObject* node
    cdef PyObject* key
    cdef PyObject* value
    cdef PyTypeObject* kind
    stack[0] = root
    try:
        while top:
            top -= 1
            node = stack[top]
            if Py_TYPE(node) == &PyDict_Type:
                size = dict_size(node)
                total += size
                pos = 0
                for i in range(size):
                    dict_next(node, &pos, &key, &value)
                    kind = Py_TYPE(value)
                    if kind == &PyDict_Type or kind == &PyList_Type:
                        if top == capacity:
                            stack = grow(stack, local, capacity)
                            capacity *= 2
                        stack[top] = value
                        top += 1
            else:
                size = list_size(node)
                for i in range(size):
                    value = list_item(node, i)
                    kind = Py_TYPE(value)
                    if kind == &PyDict_Type or kind == &PyList_Type:
                        if top == capacity:
                            stack = grow(stack, local, capacity)
                            capacity *= 2
                        stack[top] = value
                        top += 1
    finally:
        if stack != local:
            PyMem_Free(stack)
    return total


cdef PyObject** grow(PyObject** stack, PyObject** local, Py_ssize_t capacity) except NULL:
    """The stack with twice the room (``local``, on the C stack, is copied to the heap the first time)."""
    cdef PyObject** grown
    cdef Py_ssize_t i
    if stack == local:
        grown = <PyObject**>PyMem_Malloc(2 * capacity * sizeof(PyObject*))
        if grown != NULL:
            for i in range(capacity):
                grown[i] = local[i]
    else:
        grown = <PyObject**>PyMem_Realloc(stack, 2 * capacity * sizeof(PyObject*))
    if grown == NULL:
        raise MemoryError()
    return grown
