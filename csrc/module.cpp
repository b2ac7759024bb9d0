// The Python module fused_inpaint._C: importing it loads this library, whose static
// initialisers register the kernels with the PyTorch dispatcher. It has no Python API of
// its own (everything goes through torch.ops.fused_inpaint).
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
