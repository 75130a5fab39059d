/*
 * tether._speedups: optional compiled twins of hot pure-Python functions.
 *
 * apply_mask(data, mask) -> bytes: RFC 6455 section 5.3 masking, 8 bytes at a time.
 * The pure-Python twin is tether.protocol.frames.apply_mask; both give the same bytes.
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

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes\n\nXOR data with the 4-byte mask repeated."},
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
