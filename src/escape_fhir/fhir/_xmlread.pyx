# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The FHIR XML reader's fast path (issue 11): the tree lxml parsed, read in C through lxml's public C API.

:func:`read` walks libxml2's nodes (``xmlNode``: name, namespace, attributes, children, text) directly,
without the Python element proxy lxml makes for each element it hands to Python, and builds the same dicts
as :class:`escape_fhir.fhir.xml_read.XmlReader` -- same keys in the same order, same values: strings, ints,
booleans, decimals through ``jsonio.decimal_from_text``, the narrative ``div`` through ``xml_parse.read_div``
(on the one proxy made for it), and the same per-context tables (:mod:`xml_tables`).

It reads only the common, valid case: every element FHIR defines in that place, in definition order, each
max-1 element once, one type per choice element, primitives with a value or extensions, typed values that
the Python reader accepts, whitespace between elements, no attribute it does not know (``xsi:`` ones are
skipped, as in Python). Anything else -- unknown or misplaced element or attribute, text, a repeat, a bad
value, a node type other than element and text -- makes it give up (``read`` returns None) and
:func:`escape_fhir.fhir.xmlio.xml_to_json` reads the document again from the start with the Python reader,
which gives the error or the validation issues exactly as before. It never returns a partial result.

A document it reads is one the Python reader reads without reporting anything in validation mode either
(nothing unknown, nothing out of order), so validation uses it too: its result is the Python reader's and
the issue list stays empty, as the Python reader would leave it.
"""

from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdlib cimport free, malloc
from libc.string cimport strcmp, strlen

cimport lxml.includes.etreepublic as cetree
from lxml.includes cimport tree
from lxml.includes.tree cimport xmlAttr, xmlNode

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir.bounds import MAX_DEPTH
from escape_fhir.fhir.xml_parse import read_div
from escape_fhir.fhir.xml_read import check_resource_type, typed_value
from escape_fhir.fhir.xml_tables import ATTRIBUTE as _ATTRIBUTE
from escape_fhir.fhir.xml_tables import COMPLEX as _COMPLEX
from escape_fhir.fhir.xml_tables import PRIMITIVE as _PRIMITIVE
from escape_fhir.fhir.xml_tables import RESOURCE as _RESOURCE
from escape_fhir.fhir.xml_tables import XHTML as _XHTML
from escape_fhir.fhir.xml_tables import table

cetree.import_lxml__etree()

__all__ = ["read"]

cdef int PRIMITIVE = _PRIMITIVE
cdef int COMPLEX = _COMPLEX
cdef int RESOURCE = _RESOURCE
cdef int XHTML = _XHTML
cdef int ATTRIBUTE = _ATTRIBUTE

# The JSON form of a primitive: a string (no check, as in Python), a boolean, or anything else (numbers),
# which goes through xml_read.typed_value.
cdef enum:
    J_STRING = 0
    J_BOOLEAN = 1
    J_OTHER = 2

cdef const char* FHIR_NS = b"http://hl7.org/fhir"
cdef const char* XHTML_NS = b"http://www.w3.org/1999/xhtml"
cdef const char* XSI_NS = b"http://www.w3.org/2001/XMLSchema-instance"


class _Decline(Exception):
    """Not the common case: the Python reader reads the document instead."""


cdef struct CSlot:
    const char* name  # UTF-8, owned by Ctx.keep
    PyObject* key  # the JSON key (str)
    PyObject* under  # "_" + key
    PyObject* slot  # the xml_tables.Slot
    int order
    int kind
    bint array
    int json


cdef class Ctx:
    """One context's children as C arrays: elements sorted by definition order, and the attribute ones."""

    cdef CSlot* elements
    cdef int n_elements
    cdef CSlot* attributes
    cdef int n_attributes
    cdef list keep  # owns every object the arrays point to
    cdef list subs  # the Ctx of each element's context, made on first use

    def __cinit__(self):
        self.elements = NULL
        self.attributes = NULL

    def __dealloc__(self):
        free(self.elements)
        free(self.attributes)

    cdef Ctx sub(self, int i):
        found = self.subs[i]
        if found is None:
            found = self.subs[i] = context_of((<object>self.elements[i].slot).context)
        return <Ctx>found


cdef dict _CONTEXTS = {}


cdef Ctx context_of(object context):
    found = _CONTEXTS.get(context)
    if found is None:
        found = _CONTEXTS[context] = _build(context)
    return <Ctx>found


cdef int _fill_slot(CSlot* c, object slot, list keep) except -1:
    name = slot.name.encode("utf-8")
    key = slot.name
    under = "_" + key
    keep.extend((name, key, under, slot))
    c.name = <const char*>(<bytes>name)
    c.key = <PyObject*>key
    c.under = <PyObject*>under
    c.slot = <PyObject*>slot
    c.order = slot.order
    c.kind = slot.kind
    c.array = slot.array
    c.json = J_STRING if slot.json == "string" else J_BOOLEAN if slot.json == "boolean" else J_OTHER
    return 0


cdef Ctx _build(object context):
    slots = table(context)
    elements = sorted((s for s in slots.values() if s.kind != ATTRIBUTE), key=lambda s: (s.order, s.name))
    attributes = [s for s in slots.values() if s.kind == ATTRIBUTE]
    cdef Ctx ctx = Ctx()
    ctx.keep = []
    ctx.subs = [None] * len(elements)
    ctx.elements = <CSlot*>malloc(sizeof(CSlot) * (len(elements) + 1))
    ctx.attributes = <CSlot*>malloc(sizeof(CSlot) * (len(attributes) + 1))
    if ctx.elements == NULL or ctx.attributes == NULL:
        raise MemoryError()
    ctx.n_elements = len(elements)
    ctx.n_attributes = len(attributes)
    cdef int i
    for i in range(len(elements)):
        _fill_slot(&ctx.elements[i], elements[i], ctx.keep)
    for i in range(len(attributes)):
        _fill_slot(&ctx.attributes[i], attributes[i], ctx.keep)
    return ctx


cdef inline bint _same(const char* a, const char* b) noexcept:
    return a[0] == b[0] and strcmp(a, b) == 0


cdef inline int _find(CSlot* slots, int start, int n, const char* name) noexcept:
    cdef int i
    for i in range(start, n):
        if _same(slots[i].name, name):
            return i
    return -1


cdef inline bint _blank(const char* s) noexcept:
    """Only XML whitespace (anything else, even Unicode spaces Python would accept, goes to Python)."""
    if s == NULL:
        return True
    while s[0] != 0:
        if s[0] != b" " and s[0] != b"\n" and s[0] != b"\t" and s[0] != b"\r":
            return False
        s += 1
    return True


cdef inline str _text(const char* s):
    return PyUnicode_DecodeUTF8(s, strlen(s), NULL)


cdef str _attribute_value(xmlAttr* a):
    cdef xmlNode* c = a.children
    if c == NULL:
        return ""
    if c.next != NULL or c.type != tree.XML_TEXT_NODE:
        raise _Decline()
    if c.content == NULL:
        return ""
    return _text(<const char*>c.content)


cdef inline bint _in(xmlNode* node, const char* ns) noexcept:
    return node.ns != NULL and strcmp(<const char*>node.ns.href, ns) == 0


cdef dict _RESOURCE_TYPES = {}


#: Tree level (the root at 1) from which an element means the document may be deeper than
#: ``bounds.MAX_DEPTH`` (xml_parse._too_deep): the walk declines from one level before it, so that a document
#: it reads is one the depth check passes; the Python path then makes the check and gives the error.
cdef int TOO_DEEP_LEVEL = MAX_DEPTH + 2


cdef int _subtree_levels(xmlNode* node) noexcept:
    """Levels of elements from ``node`` down (1: no element children); libxml2 bounds the nesting it parses."""
    cdef int deepest = 0, below
    cdef xmlNode* child = node.children
    while child != NULL:
        if child.type == tree.XML_ELEMENT_NODE:
            below = _subtree_levels(child)
            if below > deepest:
                deepest = below
        child = child.next
    return deepest + 1


cdef class _Walk:
    cdef cetree._Document doc
    cdef int level  # the tree level of the element being filled (the root at 1)

    cdef dict resource(self, xmlNode* node, str expected):
        if not _in(node, FHIR_NS):
            raise _Decline()
        rtype = _text(<const char*>node.name)
        key = (rtype, expected)
        ok = _RESOURCE_TYPES.get(key)
        if ok is None:
            try:
                check_resource_type(rtype, expected, "")
                ok = True
            except FhirFormatError:
                ok = False
            _RESOURCE_TYPES[key] = ok
        if not ok:
            raise _Decline()
        cdef dict out = {"resourceType": rtype}
        self.fill(node, context_of((rtype, rtype)), out)
        return out

    cdef int fill(self, xmlNode* node, Ctx ctx, dict out) except -1:
        self.level += 1
        if self.level + 1 >= TOO_DEEP_LEVEL:
            raise _Decline()  # its children may be too deep: the Python path checks depth exactly
        self._fill(node, ctx, out)
        self.level -= 1
        return 0

    cdef int _fill(self, xmlNode* node, Ctx ctx, dict out) except -1:
        cdef xmlAttr* a = node.properties
        cdef int i, cur, count
        cdef xmlNode* child
        cdef xmlNode* first
        while a != NULL:
            if a.ns != NULL:
                if strcmp(<const char*>a.ns.href, XSI_NS) != 0:
                    raise _Decline()
            else:
                i = _find(ctx.attributes, 0, ctx.n_attributes, <const char*>a.name)
                if i < 0:
                    raise _Decline()
                out[<object>ctx.attributes[i].key] = _attribute_value(a)
            a = a.next
        cur = -1
        count = 0
        first = NULL
        child = node.children
        while child != NULL:
            if child.type == tree.XML_ELEMENT_NODE:
                if child.ns == NULL:
                    raise _Decline()
                if cur >= 0 and _same(ctx.elements[cur].name, <const char*>child.name):
                    # the same element again (its namespace checked below)
                    i = cur
                else:
                    i = _find(ctx.elements, cur + 1, ctx.n_elements, <const char*>child.name)
                    if i < 0:
                        raise _Decline()  # unknown, or out of order
                # the XHTML narrative div, every other element in the FHIR namespace
                if ctx.elements[i].kind == XHTML:
                    if strcmp(<const char*>child.ns.href, XHTML_NS) != 0:
                        raise _Decline()
                    if self.level + _subtree_levels(child) + 1 >= TOO_DEEP_LEVEL:
                        raise _Decline()  # the narrative's XHTML counts in the depth too
                elif strcmp(<const char*>child.ns.href, FHIR_NS) != 0:
                    raise _Decline()
                if i == cur:
                    count += 1
                else:
                    if cur >= 0:
                        if ctx.elements[i].order == ctx.elements[cur].order:
                            raise _Decline()  # two types of one choice element
                        self.group(ctx, cur, first, count, out)
                    cur = i
                    first = child
                    count = 1
            elif child.type == tree.XML_TEXT_NODE or child.type == tree.XML_CDATA_SECTION_NODE:
                if not _blank(<const char*>child.content):
                    raise _Decline()
            else:
                raise _Decline()
            child = child.next
        if cur >= 0:
            self.group(ctx, cur, first, count, out)
        return 0

    cdef int group(self, Ctx ctx, int i, xmlNode* node, int count, dict out) except -1:
        """The ``count`` elements from ``node`` on (all named as ``ctx.elements[i]``) into ``out``."""
        cdef CSlot* s = &ctx.elements[i]
        cdef int k
        cdef dict item
        cdef list items
        if count > 1 and not s.array:
            raise _Decline()
        if s.kind == PRIMITIVE:
            self.primitives(ctx, i, node, count, out)
        elif s.kind == COMPLEX:
            sub = ctx.sub(i)
            if s.array:
                items = []
                out[<object>s.key] = items
                for k in range(count):
                    node = _element(node)
                    item = {}
                    self.fill(node, sub, item)
                    items.append(item)
                    node = node.next
            else:
                item = {}
                out[<object>s.key] = item
                self.fill(node, sub, item)
        elif s.kind == RESOURCE:
            expected = (<object>s.slot).type_code
            if s.array:
                items = []
                for k in range(count):
                    node = _element(node)
                    items.append(self.nested_resource(node, expected))
                    node = node.next
                out[<object>s.key] = items
            else:
                out[<object>s.key] = self.nested_resource(node, expected)
        else:
            if s.array:
                items = []
                for k in range(count):
                    node = _element(node)
                    items.append(self.div(node))
                    node = node.next
                out[<object>s.key] = items
            else:
                out[<object>s.key] = self.div(node)
        return 0

    cdef object div(self, xmlNode* node):
        try:
            return read_div(cetree.elementFactory(self.doc, node), "")
        except FhirFormatError:
            raise _Decline()

    cdef dict nested_resource(self, xmlNode* node, str expected):
        """``<resource><Patient>...</Patient></resource>``: no attributes, one element, blank text."""
        if node.properties != NULL:
            raise _Decline()
        cdef xmlNode* found = NULL
        cdef xmlNode* child = node.children
        while child != NULL:
            if child.type == tree.XML_ELEMENT_NODE:
                if found != NULL:
                    raise _Decline()
                found = child
            elif child.type == tree.XML_TEXT_NODE or child.type == tree.XML_CDATA_SECTION_NODE:
                if not _blank(<const char*>child.content):
                    raise _Decline()
            else:
                raise _Decline()
            child = child.next
        if found == NULL:
            raise _Decline()
        self.level += 1  # the container element is a level of its own
        resource = self.resource(found, expected)
        self.level -= 1
        return resource

    cdef int primitives(self, Ctx ctx, int i, xmlNode* node, int count, dict out) except -1:
        cdef CSlot* s = &ctx.elements[i]
        cdef int k
        cdef object value
        cdef dict extra
        cdef list values, extras
        cdef bint any_value = False, any_extra = False
        if count == 1 and not s.array:
            value = _simple_value(node)
            if value is not None:
                out[<object>s.key] = _typed(s, value)
                return 0
        values = []
        extras = []
        for k in range(count):
            node = _element(node)
            value = _simple_value(node)
            if value is not None:
                values.append(_typed(s, value))
                extras.append(None)
                any_value = True
            else:
                extra = {}
                self.fill(node, ctx.sub(i), extra)
                value = extra.pop("value", None)
                if value is None and not extra:
                    raise _Decline()  # no value and no extensions
                if value is not None:
                    values.append(_typed(s, value))
                    any_value = True
                else:
                    values.append(None)
                if extra:
                    extras.append(extra)
                    any_extra = True
                else:
                    extras.append(None)
            node = node.next
        if s.array:
            if any_value:
                out[<object>s.key] = values
            if any_extra:
                out[<object>s.under] = extras
            return 0
        if values[0] is not None:
            out[<object>s.key] = values[0]
        if extras[0] is not None:
            out[<object>s.under] = extras[0]
        return 0


cdef inline xmlNode* _element(xmlNode* node) noexcept:
    """``node`` or its first following sibling that is an element (a group's elements are consecutive)."""
    while node.type != tree.XML_ELEMENT_NODE:
        node = node.next
    return node


cdef object _simple_value(xmlNode* node):
    """The value of ``<name value=".."/>`` (one attribute, no child element, blank text), else None."""
    cdef xmlAttr* a = node.properties
    if a == NULL or a.next != NULL or a.ns != NULL or strcmp(<const char*>a.name, b"value") != 0:
        return None
    cdef xmlNode* child = node.children
    while child != NULL:
        if child.type == tree.XML_ELEMENT_NODE:
            return None
        if child.type == tree.XML_TEXT_NODE or child.type == tree.XML_CDATA_SECTION_NODE:
            if not _blank(<const char*>child.content):
                raise _Decline()
        else:
            raise _Decline()
        child = child.next
    return _attribute_value(a)


cdef object _typed(CSlot* s, str value):
    if s.json == J_STRING:
        return value
    if s.json == J_BOOLEAN:
        if value == "true":
            return True
        if value == "false":
            return False
    try:
        return typed_value(<object>s.slot, value, "")
    except FhirFormatError:
        raise _Decline()


def read(root):
    """The resource ``root`` (an lxml element from ``xml_parse.parse_xml``) in FHIR JSON form, or None when
    the document is not the common case this reads (the Python reader then reads it, errors and all)."""
    cdef cetree._Element element = root
    cdef _Walk walk = _Walk()
    walk.doc = element._doc
    try:
        return walk.resource(element._c_node, "Resource")
    except _Decline:
        return None
