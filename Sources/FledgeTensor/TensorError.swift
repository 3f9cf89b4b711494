// Errors of the tensor layer. Every message ends with a hint for the user.

/// An error raised by FledgeTensor.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case outOfMemory(bytes: Int)

    public var description: String {
        switch self {
        case .outOfMemory(let bytes):
            let gib = Double(bytes) / 1_073_741_824
            return "could not allocate \(bytes) bytes (\(String(format: "%.2f", gib)) GiB). "
                + "Hint: use a smaller batch size or sequence length, or a smaller model."
        }
    }
}
