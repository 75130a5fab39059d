/*
 * tether._speedups: optional compiled twins of hot pure-Python functions.
 *
 * apply_mask(data, mask) -> bytes: RFC 6455 section 5.3 masking, 8 bytes at a time.
 * encode_server_frame(data) -> bytes: one unmasked, final data frame for str or bytes.
 * parse_small_frame(data, masked, limit) -> str | bytes | None: data is exactly one small,
 *     final, uncompressed text or binary frame; its message, or None for anything else.
 *
 * Each has a pure-Python twin in tether.protocol.frames (py_apply_mask,
 * py_encode_server_frame, py_parse_small_frame) that gives the same results; the tests
 * compare them on generated input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    PyObject *result = NULL;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_mask() takes exactly 2 arguments");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "the masking key must be 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    {
        const unsigned char *in = (const unsigned char *)data.buf;
        const unsigned char *m = (const unsigned char *)mask.buf;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
        Py_ssize_t n = data.len, i = 0;
        uint32_t m32;
        uint64_t m64;
        memcpy(&m32, m, 4);
        m64 = ((uint64_t)m32 << 32) | (uint64_t)m32; /* same byte pattern either endianness */
        Py_BEGIN_ALLOW_THREADS
        for (; i + 8 <= n; i += 8) {
            uint64_t x;
            memcpy(&x, in + i, 8);
            x ^= m64;
            memcpy(out + i, &x, 8);
        }
        for (; i < n; i++) {
            out[i] = in[i] ^ m[i & 3];
        }
        Py_END_ALLOW_THREADS
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

static PyObject *
encode_server_frame(PyObject *module, PyObject *data)
{
    const char *buf;
    Py_ssize_t n;
    Py_buffer view;
    int opcode, have_view = 0;
    PyObject *result;
    char *out;

    if (PyUnicode_Check(data)) {
        buf = PyUnicode_AsUTF8AndSize(data, &n); /* UnicodeEncodeError on surrogates */
        if (buf == NULL) {
            return NULL;
        }
        opcode = 0x1;
    }
    else if (PyBytes_Check(data)) {
        buf = PyBytes_AS_STRING(data);
        n = PyBytes_GET_SIZE(data);
        opcode = 0x2;
    }
    else {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        have_view = 1;
        buf = (const char *)view.buf;
        n = view.len;
        opcode = 0x2;
    }
    {
        Py_ssize_t hlen = n < 126 ? 2 : (n < 65536 ? 4 : 10);
        result = PyBytes_FromStringAndSize(NULL, hlen + n);
        if (result == NULL) {
            goto done;
        }
        out = PyBytes_AS_STRING(result);
        out[0] = (char)(0x80 | opcode);
        if (n < 126) {
            out[1] = (char)n;
        }
        else if (n < 65536) {
            out[1] = 126;
            out[2] = (char)((n >> 8) & 0xFF);
            out[3] = (char)(n & 0xFF);
        }
        else {
            uint64_t len = (uint64_t)n;
            int i;
            out[1] = 127;
            for (i = 0; i < 8; i++) {
                out[2 + i] = (char)((len >> (56 - 8 * i)) & 0xFF);
            }
        }
        memcpy(out + hlen, buf, (size_t)n);
    }
done:
    if (have_view) {
        PyBuffer_Release(&view);
    }
    return result;
}

static PyObject *
parse_small_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    PyObject *result = NULL;
    const unsigned char *in;
    unsigned char payload[125];
    Py_ssize_t n, length, limit;
    int masked, b0, b1;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "parse_small_frame() takes exactly 3 arguments");
        return NULL;
    }
    masked = PyObject_IsTrue(args[1]);
    if (masked < 0) {
        return NULL;
    }
    limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return NULL;
        }
        PyErr_Clear(); /* a limit past Py_ssize_t: no limit for a frame of 125 bytes */
        limit = PY_SSIZE_T_MAX;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    in = (const unsigned char *)data.buf;
    n = data.len;
    if (n < 2) {
        goto none;
    }
    b0 = in[0];
    b1 = in[1];
    if (b0 != 0x81 && b0 != 0x82) { /* FIN, no RSV bits, text or binary */
        goto none;
    }
    length = b1 & 0x7F;
    if (length > 125 || length > limit) {
        goto none;
    }
    if (masked) {
        Py_ssize_t i;
        const unsigned char *m = in + 2;
        if (!(b1 & 0x80) || n != 6 + length) {
            goto none;
        }
        for (i = 0; i < length; i++) {
            payload[i] = in[6 + i] ^ m[i & 3];
        }
    }
    else {
        if ((b1 & 0x80) || n != 2 + length) {
            goto none;
        }
        memcpy(payload, in + 2, (size_t)length);
    }
    if (b0 == 0x81) {
        result = PyUnicode_DecodeUTF8((const char *)payload, length, NULL);
        if (result == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                goto done;
            }
            PyErr_Clear(); /* the general parser fails the connection with 1007 */
            goto none;
        }
    }
    else {
        result = PyBytes_FromStringAndSize((const char *)payload, length);
    }
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes\n\nXOR data with the 4-byte mask repeated."},
    {"encode_server_frame", (PyCFunction)encode_server_frame, METH_O,
     "encode_server_frame(data) -> bytes\n\nOne unmasked, final frame: str as text, bytes as "
     "binary."},
    {"parse_small_frame", (PyCFunction)(void (*)(void))parse_small_frame, METH_FASTCALL,
     "parse_small_frame(data, masked, limit) -> str | bytes | None\n\nThe message of data if "
     "it is exactly one final, uncompressed text or binary frame of at most min(125, limit) "
     "bytes, masked as told, valid UTF-8 for text; None otherwise."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "tether._speedups", "Compiled twins of tether hot paths.", -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
