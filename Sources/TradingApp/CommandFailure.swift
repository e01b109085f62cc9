/// A failure of the work a command was asked to do (a missing or malformed file, no head
/// answering, a peer that failed): printed as `Error: …` with exit status 1 and no usage block,
/// which stays for wrong arguments (`ValidationError`, exit status 64).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
