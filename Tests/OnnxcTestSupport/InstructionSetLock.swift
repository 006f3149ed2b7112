import Synchronization

/// CKernels' instruction-set level (`ck_set_isa`) is one switch for the whole process, and Swift Testing runs suites in
/// parallel: a test that flips it to run a kernel on each path holds this lock until it has set it back, and a test
/// whose comparison needs the level to stay put between two calls (CK_ISA_AUTO on 1 and 2 threads, the plain entry
/// points against `*_with(CK_ISA_AUTO)`) holds it across them.
public enum InstructionSetLock {
    private static let mutex = Mutex(())

    public static func exclusively(_ body: () -> Void) {
        mutex.withLock { _ in body() }
    }
}
