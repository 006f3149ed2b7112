/* The header-only C interface; the functions are implemented in Swift (OnnxcRuntimeAPI). */
