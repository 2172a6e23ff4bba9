# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The JSON reader's checks at C speed (:func:`escape_fhir.fhir.jsonio._fast_loads`).

Two questions about a JSON text that msgspec reads, each answered in one pass in C:

* :func:`containers`: how many ``{`` and ``[`` bytes it holds, strings included -- the count that
  ``bounds.MAX_CONTAINERS`` and the depth check read, with exactly the meaning of the Python path's count
  (``raw.count(b"{") + raw.count(b"[")``).
* :func:`kept_every_member`: whether the dicts msgspec made of it hold as many members as the text has
  colons outside strings. In valid JSON (msgspec accepted the text) a colon outside a string is always a
  name separator, one per object member, so the two are equal exactly when no member was dropped, and a
  duplicate key drops one. Colons inside strings -- written or escaped as ``\\u003a`` -- are not counted at
  all, so no escape needs a special case.

Strings are skipped with ``memchr`` to the next quote; a quote ends the string when an even run of
backslashes precedes it (``\\\\"`` ends it, ``\\"`` does not). Multi-byte UTF-8 sequences never contain an
ASCII byte, so the bytes are read as they are. The tree walk is iterative (the depth is not yet bounded
when it runs) and reads each dict's size and values without calling Python code.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport PyObject
from libc.string cimport memchr

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

__all__ = ["containers", "kept_every_member"]

cdef enum:
    # Entries of the walk's stack kept on the C stack; a document with more containers waiting grows it on the heap.
    LOCAL_STACK = 64


def containers(object raw) -> int:
    """The ``{`` and ``[`` bytes of ``raw``, inside strings too (they differ only in bit 0x20)."""
    if not PyBytes_Check(raw):  # bytes or a subclass of it, as jsonio.loads takes
        raise TypeError("bytes expected")
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef Py_ssize_t i
    cdef Py_ssize_t count = 0
    for i in range(n):
        count += (p[i] | 0x20) == 0x7B
    return count


cdef Py_ssize_t outside_colons(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Colons outside strings, for a text that is valid JSON (on any other text: some count, never a crash)."""
    cdef const unsigned char* end = p + n
    cdef const unsigned char* start
    cdef const unsigned char* quote
    cdef const unsigned char* back
    cdef Py_ssize_t colons = 0
    cdef unsigned char c
    while p < end:
        c = p[0]
        p += 1
        if c == b'"':
            start = p
            while True:
                quote = <const unsigned char*>memchr(p, b'"', end - p)
                if quote == NULL:
                    return colons
                back = quote
                while back > start and back[-1] == b'\\':
                    back -= 1
                p = quote + 1
                if not ((quote - back) & 1):
                    break
        elif c == b':':
            colons += 1
    return colons


cdef Py_ssize_t members(PyObject* root) except -1:
    """The members of every dict in the tree under ``root`` (dicts and lists as msgspec makes them)."""
    cdef PyObject* local[LOCAL_STACK]
    cdef PyObject** stack = local
    cdef PyObject** grown
    cdef Py_ssize_t capacity = LOCAL_STACK
    cdef Py_ssize_t top = 0
    cdef Py_ssize_t total = 0
    cdef Py_ssize_t pos
    cdef Py_ssize_t i
    cdef Py_ssize_t size
    cdef PyObject* node
    cdef PyObject* key
    cdef PyObject* value
    cdef PyTypeObject* kind
    stack[0] = root
    top = 1
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


def kept_every_member(object raw, dict obj not None) -> bool:
    """Whether ``obj``, msgspec's reading of the valid JSON text ``raw``, kept every object member of it."""
    if not PyBytes_Check(raw):
        raise TypeError("bytes expected")
    cdef Py_ssize_t colons = outside_colons(<const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    return colons == members(<PyObject*>obj)
