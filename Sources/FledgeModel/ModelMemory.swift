// ModelMemory: typed offsets into the model's two kinds of memory. Parameters, gradients and AdamW's moments
// share `ParameterLayout`'s order, and only a `ParameterOffset` reaches into them; the activation arena has its
// own plan, and only an `ActivationOffset` reaches into it. `parameters + block.qkvWeight` and
// `activations + block.qkv` read as before, but an activation offset added to the parameters (or the reverse)
// does not compile.

import FledgeTensor

/// Where a tensor starts in the parameter layout (the parameters, their gradients, the optimizer's moments).
struct ParameterOffset: Equatable {
    let value: Int
    init(_ value: Int) { self.value = value }
}

/// Where a buffer starts in an activation plan.
struct ActivationOffset: Equatable {
    let value: Int
    init(_ value: Int) { self.value = value }
    /// The offset of a buffer that the plan does not hold (its field is never read for this configuration).
    static let unplanned = ActivationOffset(0)
}

/// The parameters or the gradients: one flat buffer in `ParameterLayout`'s order.
struct ParameterMemory {
    let base: FloatPointer
    static func + (memory: ParameterMemory, offset: ParameterOffset) -> FloatPointer { memory.base + offset.value }
}

/// The activation arena of one plan.
struct ActivationMemory {
    let base: FloatPointer
    static func + (memory: ActivationMemory, offset: ActivationOffset) -> FloatPointer { memory.base + offset.value }
}
