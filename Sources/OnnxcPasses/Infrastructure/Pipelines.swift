/// The named pass pipelines, as ordered lists. Order matters: folding exposes dead code and duplicates, and
/// the driver repeats the list to a fixed point.
public enum Pipelines {
    /// Every pass onnxc has, for `onnxc passes` and `--disable-pass` validation.
    public static let all: [any Pass] = [
        ConstantFolding(),
        IdentityElimination(),
        CommonSubexpressionElimination(),
        DeadCodeElimination(),
    ]

    /// -O0: nothing; -O1: canonicalize (folding and eliminations); -O2: -O1 plus fusions (none yet).
    public static func passes(level: Int, disabled: Set<String> = []) -> [any Pass] {
        let canonicalize: [any Pass] = [
            ConstantFolding(),                 // evaluate what is constant, including static shape chains
            IdentityElimination(),             // Identity and inference Dropout read through
            CommonSubexpressionElimination(),  // merge equal nodes (and equal constants)
            DeadCodeElimination(),             // drop what nothing reads, and unused initializers
        ]
        let selected: [any Pass] = level <= 0 ? [] : canonicalize
        return selected.filter { !disabled.contains($0.id) }
    }
}
