#if canImport(Glibc)
import Glibc
#endif
import OnnxcCLI

exit(OnnxcMain.run(Array(CommandLine.arguments.dropFirst())))
