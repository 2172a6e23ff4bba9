# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The XML writer's fast path (issue 11): FHIR JSON (dicts) -> FHIR XML bytes, written into a C buffer.

:func:`write` walks the dict/list tree with the C API and writes the same bytes as :mod:`xml_write` (the
Python writer, the reference) for the common, valid case: elements in definition order (each object's
properties looked up in a per-context table made once from :mod:`xml_tables`, sorted by ``Slot.order`` when
they are not already in order), ``value`` attributes escaped as the Python writer escapes them, a primitive's
``_name`` (id, extensions; ``null`` alignment in arrays), nested resources, pretty printing. The narrative
``div`` is parsed and serialised by the same Python helpers as the Python writer.

Anything else -- an unknown key, a value of the wrong JSON type or Python type, ``null`` where a value is
needed, a string with a character XML cannot hold, two values of one choice element, an unknown resource
type, very deep nesting, any exception -- makes :func:`write` return None without output, and the caller
(:func:`escape_fhir.fhir.xmlio.json_to_xml`) runs the Python writer on the whole resource, which writes it or
raises the same FhirFormatError as before. So the error messages live in one place, and this module only has
to be exact where it writes.
"""

from cpython.object cimport PyObject
from libc.stdlib cimport free, malloc, realloc
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset

from decimal import Decimal

from lxml.etree import tostring as _tostring

from escape_fhir.fhir.jsonio import RawDecimal
from escape_fhir.fhir.r4model import model as _model
from escape_fhir.fhir.xml_parse import FHIR_NS, parse_div as _parse_div
from escape_fhir.fhir import xml_tables
from escape_fhir.fhir.xml_tables import table as _table


cdef extern from "Python.h":
    # Borrowed references and no exception handling by Cython: each result is checked here.
    int PyDict_Next(PyObject* p, Py_ssize_t* ppos, PyObject** pkey, PyObject** pvalue)
    PyObject* PyDict_GetItemWithError(PyObject* p, PyObject* key)
    int PyDict_CheckExact(PyObject* o)
    int PyList_CheckExact(PyObject* o)
    int PyUnicode_CheckExact(PyObject* o)
    int PyLong_CheckExact(PyObject* o)
    int PyFloat_CheckExact(PyObject* o)
    Py_ssize_t PyList_GET_SIZE(PyObject* o)
    PyObject* PyList_GET_ITEM(PyObject* o, Py_ssize_t i)
    const char* PyUnicode_AsUTF8AndSize(PyObject* o, Py_ssize_t* size)
    long long PyLong_AsLongLongAndOverflow(PyObject* o, int* overflow)
    PyObject* PyObject_Str(PyObject* o)
    void PyErr_Clear()
    void Py_DECREF(PyObject* o)
    void Py_INCREF(PyObject* o)
    void Py_XDECREF(PyObject* o)
    void Py_XINCREF(PyObject* o)
    PyObject* Py_None
    PyObject* Py_True
    PyObject* Py_False
    void* Py_TYPE(PyObject* o)


cdef enum:
    GIVE_UP = -1        # not the common valid case: the Python writer writes the resource (or says why not)
    MAX_LEVEL = 200     # deeper than FHIR content gets (bounds.MAX_DEPTH = 400 JSON levels): Python decides
    MAX_INDENT = 2 * MAX_LEVEL + 8
    # xml_tables' kinds of slot (checked below)
    PRIMITIVE = 0
    COMPLEX = 1
    RESOURCE = 2
    XHTML = 3
    ATTRIBUTE = 4
    # the JSON forms of a primitive
    J_STRING = 0
    J_BOOLEAN = 1
    J_NUMBER = 2

if (xml_tables.PRIMITIVE, xml_tables.COMPLEX, xml_tables.RESOURCE, xml_tables.XHTML, xml_tables.ATTRIBUTE) != (
    PRIMITIVE, COMPLEX, RESOURCE, XHTML, ATTRIBUTE
):
    raise ImportError("xml_tables' kinds of slot changed: _xmlwrite.pyx must follow")

# What each byte of a string's UTF-8 needs: 0 nothing, 1 an escape, 2 a refusal (control characters), 3 a
# look at the sequence (0xEF starts U+FFFE and U+FFFF, which XML cannot hold).
cdef unsigned char _BYTE_CLASS[256]
memset(_BYTE_CLASS, 0, 256)
for _b in range(0x20):
    _BYTE_CLASS[_b] = 2
for _b in (ord("&"), ord("<"), ord(">"), ord('"'), ord("\n"), ord("\r"), ord("\t")):
    _BYTE_CLASS[_b] = 1
_BYTE_CLASS[0xEF] = 3

cdef char _INDENT[MAX_INDENT]
_INDENT[0] = b"\n"
memset(&_INDENT[1], 32, MAX_INDENT - 1)

_DECLARATION = b"<?xml version='1.0' encoding='UTF-8'?>\n"
_ROOT_NS = (' xmlns="' + FHIR_NS + '"').encode()

cdef PyObject* _DECIMAL = <PyObject*>Decimal
cdef PyObject* _RAW_DECIMAL = <PyObject*>RawDecimal


cdef class _Slot:
    """One child of a context, as :class:`xml_tables.Slot`, with its tag texts as UTF-8."""

    cdef int order
    cdef int kind
    cdef bint array
    cdef int json
    cdef bint decimal
    cdef int choice            # -1, or the choice element's number within its table
    cdef object context        # the xml_tables context of a complex element or a primitive's _name
    cdef _Table table          # that context's table, made on first use
    cdef object type_code      # the resource type a RESOURCE slot allows (or Resource, DomainResource)
    cdef object under          # "_name"
    cdef object pyname         # "name"
    cdef bytes name            # b"name"
    cdef bytes open_value      # b'<name value="'
    cdef bytes open_tag        # b"<name"
    cdef bytes close_tag       # b"</name>"
    cdef bytes attribute       # b' name="'
    cdef bytes wrapped_open    # b"<name>"


cdef enum:
    KEY_CACHE = 32  # a power of two


cdef class _Table:
    """The children of one context: instance name -> _Slot, and "_name" -> _Slot of its primitives.

    ``keys``/``found`` remember the last key objects found in ``slots`` by identity: JSON parsers share one
    str object per distinct key (orjson's key cache, the stdlib scanner's memo), so most look-ups are one
    pointer comparison instead of a hash look-up and a string comparison. A remembered key is referenced
    (so its address cannot be reused by another object)."""

    cdef PyObject* keys[KEY_CACHE]
    cdef PyObject* found[KEY_CACHE]
    cdef dict slots
    cdef dict under
    cdef bytes open_tag        # a resource's table: b"<Type", b'<Type xmlns="http://hl7.org/fhir"', b"</Type>"
    cdef bytes root_tag
    cdef bytes close_tag

    def __dealloc__(self):
        for i in range(KEY_CACHE):
            Py_XDECREF(self.keys[i])
            self.keys[i] = NULL


cdef inline PyObject* _lookup(_Table t, PyObject* key):
    """``t.slots.get(key)`` (borrowed), through the identity cache."""
    cdef size_t h = <size_t>key
    cdef int i = <int>(((h >> 4) ^ (h >> 10)) & (KEY_CACHE - 1))
    if t.keys[i] == key:
        return t.found[i]
    cdef PyObject* found = PyDict_GetItemWithError(<PyObject*>t.slots, key)
    if found != NULL:
        Py_INCREF(key)
        Py_XDECREF(t.keys[i])
        t.keys[i] = key
        t.found[i] = found
    return found


cdef dict _TABLES = {}       # context -> _Table
cdef dict _RESOURCES = {}    # resource type -> its _Table, or None for a name that is not a resource type


cdef _Table _make_table(context):
    cdef _Table t = _Table()
    cdef _Slot s
    cdef dict choices = {}
    t.slots = {}
    t.under = {}
    t.open_tag = t.root_tag = t.close_tag = None
    for name, slot in _table(context).items():
        s = _Slot()
        s.order = slot.order
        s.kind = slot.kind
        s.array = slot.array
        s.json = J_BOOLEAN if slot.json == "boolean" else J_NUMBER if slot.json == "number" else J_STRING
        s.decimal = slot.type_code == "decimal"
        s.choice = choices.setdefault(slot.choice, len(choices)) if slot.choice else -1
        s.context = slot.context
        s.table = None
        s.type_code = slot.type_code
        s.under = "_" + name
        s.pyname = name
        s.name = name.encode()
        s.open_value = b"<" + s.name + b' value="'
        s.open_tag = b"<" + s.name
        s.close_tag = b"</" + s.name + b">"
        s.attribute = b" " + s.name + b'="'
        s.wrapped_open = b"<" + s.name + b">"
        t.slots[name] = s
        if s.kind == PRIMITIVE:
            t.under[s.under] = s
    return t


cdef _Table _context_table(_Slot s):
    if s.table is None:
        found = _TABLES.get(s.context)
        if found is None:
            found = _TABLES[s.context] = _make_table(s.context)
        s.table = found
    return s.table


cdef object _resource_table(rtype):
    found = _RESOURCES.get(rtype, False)
    if found is False:
        if _model().is_resource_type(rtype):
            found = _make_table((rtype, rtype))
            name = rtype.encode()
            (<_Table>found).open_tag = b"<" + name
            (<_Table>found).root_tag = b"<" + name + _ROOT_NS
            (<_Table>found).close_tag = b"</" + name + b">"
        else:
            found = None
        _RESOURCES[rtype] = found
    return found


cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap


cdef struct Entry:
    PyObject* slot     # a _Slot (kept alive by its table)
    PyObject* value    # NULL when only "_name" is present
    int order


cdef struct Writer:
    Buf out
    Entry* entries     # a stack shared by the elements being written (indices, since it can move)
    Py_ssize_t used
    Py_ssize_t cap
    bint pretty


cdef int _grow(Buf* b, Py_ssize_t need) except -2:
    cdef Py_ssize_t cap = b.cap * 2
    while cap < b.size + need:
        cap *= 2
    cdef char* data = <char*>realloc(b.data, cap)
    if data == NULL:
        raise MemoryError()
    b.data = data
    b.cap = cap
    return 0


cdef inline int _put(Buf* b, const char* text, Py_ssize_t n) except -2:
    if b.size + n > b.cap:
        _grow(b, n)
    memcpy(b.data + b.size, text, n)
    b.size += n
    return 0


cdef inline int _put_bytes(Buf* b, bytes text) except -2:
    return _put(b, <const char*>text, len(text))


cdef inline int _pad(Writer* w, int level) except -2:
    return _put(&w.out, _INDENT, 1 + 2 * level)


cdef extern from *:
    """
    #define XW_ONES UINT64_C(0x0101010101010101)
    #define XW_HIGH UINT64_C(0x8080808080808080)
    """
    const uint64_t ONES "XW_ONES"
    const uint64_t HIGH "XW_HIGH"


cdef inline bint _plain8(const unsigned char* p) noexcept:
    """Whether 8 bytes are all ASCII with no control character and none of ``"&<>`` (some false negatives:
    the caller then looks at each byte). Bit tricks of https://graphics.stanford.edu/~seander/bithacks.html
    (``haszero``, ``hasless``)."""
    cdef uint64_t x, a, b
    memcpy(&x, p, 8)
    a = (x ^ (ONES * 0x22)) & (ONES * 0xFB)   # a zero byte where x has " (0x22) or & (0x26)
    b = (x ^ (ONES * 0x3C)) & (ONES * 0xFD)   # a zero byte where x has < (0x3C) or > (0x3E)
    return (
        ((x - ONES * 0x20) & ~x)                # bytes below 0x20
        | x                                     # bytes from 0x80 (non-ASCII)
        | ((a - ONES) & ~a)
        | ((b - ONES) & ~b)
    ) & HIGH == 0


cdef int _put_escaped(Buf* b, PyObject* text) except -2:
    """A str as attribute text: escaped as the Python writer escapes, GIVE_UP for what it refuses."""
    cdef Py_ssize_t n = 0
    cdef const unsigned char* s = <const unsigned char*>PyUnicode_AsUTF8AndSize(text, &n)
    if s == NULL:  # lone surrogates
        PyErr_Clear()
        return GIVE_UP
    cdef Py_ssize_t i = 0, start = 0
    cdef unsigned char c, k
    while True:
        # a run of bytes that need nothing, copied at once (found 8 bytes at a time while they are ASCII)
        while i < n:
            if i + 8 <= n and _plain8(s + i):
                i += 8
            elif _BYTE_CLASS[s[i]] == 0:
                i += 1
            else:
                break
        if i > start:
            _put(b, <const char*>s + start, i - start)
        if i == n:
            return 0
        c = s[i]
        k = _BYTE_CLASS[c]
        if k == 2:  # control characters (tab, LF and CR are class 1)
            return GIVE_UP
        if k == 3:  # 0xEF: U+FFFE and U+FFFF are refused, the rest of the sequence is plain
            if i + 2 < n and s[i + 1] == 0xBF and (s[i + 2] == 0xBE or s[i + 2] == 0xBF):
                return GIVE_UP
            start = i
            i += 1
            continue
        if c == 38:      # &
            _put(b, b"&amp;", 5)
        elif c == 60:    # <
            _put(b, b"&lt;", 4)
        elif c == 62:    # >
            _put(b, b"&gt;", 4)
        elif c == 34:    # "
            _put(b, b"&quot;", 6)
        elif c == 10:
            _put(b, b"&#10;", 5)
        elif c == 13:
            _put(b, b"&#13;", 5)
        else:            # tab
            _put(b, b"&#9;", 4)
        i += 1
        start = i


cdef int _put_int(Buf* b, PyObject* value) except -2:
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    cdef unsigned long long u
    cdef char digits[24]
    cdef int i = 24
    if overflow:
        return _put_str_of(b, value)
    if v == -1:
        PyErr_Clear()
    u = (0 - <unsigned long long>v) if v < 0 else <unsigned long long>v
    while True:
        i -= 1
        digits[i] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        i -= 1
        digits[i] = b"-"
    return _put(b, &digits[i], 24 - i)


cdef int _put_str_of(Buf* b, PyObject* value) except -2:
    """str(value), as the Python writer writes a big int or a decimal (a RawDecimal gives its own text)."""
    cdef PyObject* made = PyObject_Str(value)
    if made == NULL:  # e.g. an int too long for str(): the Python writer raises the same
        PyErr_Clear()
        return GIVE_UP
    text = <object>made
    Py_DECREF(made)
    if not PyUnicode_CheckExact(<PyObject*>text):
        return GIVE_UP
    return _put_escaped(b, <PyObject*>text)


cdef int _put_value(Buf* b, _Slot s, PyObject* value) except -2:
    """The text of a primitive's value (primitive_text of the Python writer, escaped), or GIVE_UP."""
    if s.json == J_STRING:
        if not PyUnicode_CheckExact(value):
            return GIVE_UP
        return _put_escaped(b, value)
    if s.json == J_BOOLEAN:
        if value == Py_True:
            return _put(b, b"true", 4)
        if value == Py_False:
            return _put(b, b"false", 5)
        return GIVE_UP
    if PyLong_CheckExact(value):
        return _put_int(b, value)
    if s.decimal:
        t = Py_TYPE(value)
        if t == <void*>_RAW_DECIMAL:  # str() gives its `raw` text (without a Python call here)
            raw = (<object>value).raw
            if not PyUnicode_CheckExact(<PyObject*>raw):
                return GIVE_UP
            return _put_escaped(b, <PyObject*>raw)
        if t == <void*>_DECIMAL or PyFloat_CheckExact(value):
            return _put_str_of(b, value)
    return GIVE_UP


cdef int _primitive(Writer* w, _Slot s, PyObject* value, PyObject* extra, int level) except -2:
    """One primitive item: ``<name value=".."/>``, or with ``_name`` (``extra``) its id and extensions."""
    cdef Buf* b = &w.out
    if extra == NULL or extra == Py_None:
        if value == NULL or value == Py_None:
            return GIVE_UP
        if w.pretty:
            _pad(w, level)
        _put_bytes(b, s.open_value)
        if _put_value(b, s, value) == GIVE_UP:
            return GIVE_UP
        return _put(b, b'"/>', 3)
    if not PyDict_CheckExact(extra) or PyDict_GetItemWithError(extra, <PyObject*>"value") != NULL:
        return GIVE_UP
    if value == Py_None:
        value = NULL
    return _element(w, extra, _context_table(s), level, s.open_tag, s.close_tag, False, s, value)


cdef int _item(Writer* w, _Slot s, PyObject* value, int level) except -2:
    """One item of a nested resource or narrative slot."""
    cdef Buf* b = &w.out
    if value == Py_None:
        return GIVE_UP
    if s.kind == RESOURCE:
        if w.pretty:
            _pad(w, level)
        _put_bytes(b, s.wrapped_open)
        if _resource(w, value, level + 1, s.type_code, False) == GIVE_UP:
            return GIVE_UP
        if w.pretty:
            _pad(w, level)
        return _put_bytes(b, s.close_tag)
    if s.kind == XHTML:
        text = _tostring(_parse_div(<object>value, ""), encoding="unicode")
        if not PyUnicode_CheckExact(<PyObject*>text):
            return GIVE_UP
        data = (<str>text).encode("utf-8")
        if w.pretty:
            _pad(w, level)
        return _put_bytes(b, data)
    return GIVE_UP


cdef int _resource(Writer* w, PyObject* obj, int level, expected, bint root) except -2:
    if not PyDict_CheckExact(obj):
        return GIVE_UP
    cdef PyObject* found_type = PyDict_GetItemWithError(obj, <PyObject*>"resourceType")
    if found_type == NULL or not PyUnicode_CheckExact(found_type):
        return GIVE_UP
    rtype = <object>found_type  # referenced here: making a table runs Python code
    found = _resource_table(rtype)
    if found is None:
        return GIVE_UP
    if expected != "Resource" and expected != "DomainResource" and expected != rtype:
        return GIVE_UP
    cdef _Table t = <_Table>found
    return _element(w, obj, t, level, t.root_tag if root else t.open_tag, t.close_tag, True, None, NULL)


cdef int _element(
    Writer* w,
    PyObject* obj,
    _Table t,
    int level,
    bytes open_tag,
    bytes close_tag,
    bint is_resource,
    _Slot own,
    PyObject* own_value,
) except -2:
    """``<tag attributes>children</tag>`` or ``<tag attributes/>``: the properties of ``obj`` in definition
    order (Python: _Writer.element), ``own_value`` the ``value`` attribute of a primitive with ``_name``.

    Python code can run while the children are written (a table made on first use, the narrative), and with it
    another thread: what is used across that is referenced here (``obj``, the entries' values, list items), so
    that a caller changing the resource meanwhile gets a wrong answer, as from the Python writer, not a crash.
    """
    if level > MAX_LEVEL or not PyDict_CheckExact(obj):
        return GIVE_UP
    cdef object keep = <object>obj
    cdef object item, extras, extra_item
    cdef Buf* b = &w.out
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* value
    cdef PyObject* found
    cdef PyObject* extra
    cdef bint underscored = False, in_order = True
    cdef int last = -1, order, i, j
    cdef Py_ssize_t base = w.used, n = 0, k, count
    cdef Entry entry
    cdef Entry* entries
    cdef _Slot s
    cdef PyObject* dict_under = <PyObject*>t.under

    # The properties' slots (Python: _Writer.ordered), on the shared stack from `base`.
    while PyDict_Next(obj, &pos, &key, &value):
        if not PyUnicode_CheckExact(key):
            return GIVE_UP
        found = _lookup(t, key)
        if found == NULL:
            if is_resource and (<str>key) == "resourceType":
                continue
            found = PyDict_GetItemWithError(dict_under, key)
            if found == NULL:
                return GIVE_UP
            underscored = True
            s = <_Slot>found
            if PyDict_GetItemWithError(obj, <PyObject*>s.pyname) != NULL:
                continue  # written with its value
            value = NULL
        s = <_Slot>found
        if s.choice >= 0:
            entries = w.entries + base
            for k in range(n):
                if (<_Slot>entries[k].slot).choice == s.choice:
                    return GIVE_UP  # two values of one choice element
        order = s.order
        if order < last:
            in_order = False
        last = order
        if w.used == w.cap:
            entries = <Entry*>realloc(w.entries, 2 * w.cap * sizeof(Entry))
            if entries == NULL:
                raise MemoryError()
            w.entries = entries
            w.cap *= 2
        w.entries[w.used].slot = found
        w.entries[w.used].value = value
        Py_XINCREF(value)  # released below, or by write() when the writer gives up
        w.entries[w.used].order = order
        w.used += 1
        n += 1
    entries = w.entries + base
    if not in_order:  # insertion sort: stable, like list.sort
        for i in range(1, n):
            entry = entries[i]
            j = i - 1
            while j >= 0 and entries[j].order > entry.order:
                entries[j + 1] = entries[j]
                j -= 1
            entries[j + 1] = entry

    if w.pretty and level:
        _pad(w, level)
    _put_bytes(b, open_tag)
    for k in range(n):
        s = <_Slot>w.entries[base + k].slot
        if s.kind == ATTRIBUTE:
            value = w.entries[base + k].value
            _put_bytes(b, s.attribute)
            if value == NULL or _put_value(b, s, value) == GIVE_UP:
                return GIVE_UP
            _put(b, b'"', 1)
    if own_value != NULL:
        _put(b, b' value="', 8)
        if _put_value(b, own, own_value) == GIVE_UP:
            return GIVE_UP
        _put(b, b'"', 1)
    _put(b, b">", 1)
    cdef Py_ssize_t mark = b.size

    for k in range(n):
        # w.entries can move while children are written: read through the index each time
        s = <_Slot>w.entries[base + k].slot
        value = w.entries[base + k].value
        if s.kind == COMPLEX:
            if value == NULL:
                return GIVE_UP
            if not s.array:
                if _element(w, value, _context_table(s), level + 1, s.open_tag, s.close_tag, False, None, NULL) == GIVE_UP:
                    return GIVE_UP
                continue
            if not PyList_CheckExact(value):
                return GIVE_UP
            i = 0
            while i < PyList_GET_SIZE(value):
                item = <object>PyList_GET_ITEM(value, i)
                if _element(
                    w, <PyObject*>item, _context_table(s), level + 1, s.open_tag, s.close_tag, False, None, NULL
                ) == GIVE_UP:
                    return GIVE_UP
                i += 1
        elif s.kind == PRIMITIVE:
            extra = PyDict_GetItemWithError(obj, <PyObject*>s.under) if underscored else NULL
            if value == Py_None:
                value = NULL
            if extra == NULL or extra == Py_None:
                if not s.array:
                    if _primitive(w, s, value, NULL, level + 1) == GIVE_UP:
                        return GIVE_UP
                    continue
                if value == NULL or not PyList_CheckExact(value):
                    return GIVE_UP
                i = 0
                while i < PyList_GET_SIZE(value):
                    item = <object>PyList_GET_ITEM(value, i)
                    if _primitive(w, s, <PyObject*>item, NULL, level + 1) == GIVE_UP:
                        return GIVE_UP
                    i += 1
                continue
            extras = <object>extra  # not an entry's: referenced here
            if not s.array:
                if _primitive(w, s, value, extra, level + 1) == GIVE_UP:
                    return GIVE_UP
                continue
            # values and _values aligned, null where one has no item (Python: _Writer.group)
            if not PyList_CheckExact(extra) or (value != NULL and not PyList_CheckExact(value)):
                return GIVE_UP
            count = PyList_GET_SIZE(extra)
            if value != NULL and PyList_GET_SIZE(value) != count:
                return GIVE_UP
            for i in range(count):
                if i >= PyList_GET_SIZE(extra) or (value != NULL and i >= PyList_GET_SIZE(value)):
                    return GIVE_UP  # changed meanwhile
                item = <object>PyList_GET_ITEM(value, i) if value != NULL else None
                extra_item = <object>PyList_GET_ITEM(extra, i)
                if _primitive(w, s, <PyObject*>item, <PyObject*>extra_item, level + 1) == GIVE_UP:
                    return GIVE_UP
        elif s.kind != ATTRIBUTE:  # a nested resource, the narrative
            if value == NULL:
                return GIVE_UP
            if not s.array:
                if _item(w, s, value, level + 1) == GIVE_UP:
                    return GIVE_UP
                continue
            if not PyList_CheckExact(value):
                return GIVE_UP
            i = 0
            while i < PyList_GET_SIZE(value):
                item = <object>PyList_GET_ITEM(value, i)
                if _item(w, s, <PyObject*>item, level + 1) == GIVE_UP:
                    return GIVE_UP
                i += 1
    for k in range(n):
        Py_XDECREF(w.entries[base + k].value)
    w.used = base

    if b.size == mark:  # no children: <tag attributes/>
        b.size -= 1
        return _put(b, b"/>", 2)
    if w.pretty:
        _pad(w, level)
    return _put_bytes(b, close_tag)


def write(resource, bint pretty=False):
    """``resource`` as FHIR XML bytes, exactly as :func:`xml_write.write` writes it, or None when this is not
    the common valid case (the Python writer then writes it, or raises the error)."""
    cdef Writer w
    w.pretty = pretty
    w.used = 0
    w.cap = 256
    w.out.cap = 16384
    w.out.size = 0
    w.out.data = <char*>malloc(w.out.cap)
    w.entries = <Entry*>malloc(w.cap * sizeof(Entry))
    try:
        if w.out.data == NULL or w.entries == NULL:
            return None
        _put_bytes(&w.out, _DECLARATION)
        if _resource(&w, <PyObject*>resource, 0, "Resource", True) == GIVE_UP:
            return None
        return w.out.data[:w.out.size]
    except Exception:
        return None
    finally:
        if w.entries != NULL:
            for i in range(w.used):  # the values of the elements left when the writer gave up
                Py_XDECREF(w.entries[i].value)
            free(w.entries)
        free(w.out.data)
