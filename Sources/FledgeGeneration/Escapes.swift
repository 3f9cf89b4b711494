// The escape rule of text given on the command line or in plain-text prompt files.

/// The one escape rule of every text given on the command line or in a plain-text prompt file (--prompt,
/// --stop, --separator, --qa-template): `\n` is a newline, `\t` a tab, `\\` a backslash; any other
/// backslash stays as it is. So `--stop "\n\n"` stops at a blank line everywhere.
public func unescaped(_ text: String) -> String {
    guard text.contains("\\") else { return text }
    var result = ""
    var escaping = false
    for character in text {
        if escaping {
            switch character {
            case "n": result.append("\n")
            case "t": result.append("\t")
            case "\\": result.append("\\")
            default: result.append("\\"); result.append(character)
            }
            escaping = false
        } else if character == "\\" {
            escaping = true
        } else {
            result.append(character)
        }
    }
    if escaping { result.append("\\") }
    return result
}
