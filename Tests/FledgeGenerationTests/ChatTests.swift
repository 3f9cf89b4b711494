// Chat: the prompt follows the fine-tuning template; earlier turns stay in the context until they must be
// dropped; commands work; a whole session runs from piped lines.

import FledgeData
import FledgeGeneration
import FledgeTokenizer
import Foundation
import Testing

@Suite struct ChatTests {
    func session(context: Int = 64, tokens: Int = 6) throws -> ChatSession {
        var options = GenerationOptions()
        (options.maxTokens, options.sampling) = (tokens, .greedy)
        return try ChatSession(
            generator: Fixtures.generator(context: context), format: SequenceFormat(), options: options)
    }

    @Test func turnsFollowTheTemplateAndTheOldestAreDropped() throws {
        let chat = try session(context: 128, tokens: 6)
        var cache = MergeCache()
        let (prompt, closing) = chat.encoder.turn(question: "Who art thou?", cache: &cache)
        #expect(closing == [chat.encoder.eos])
        let first = try chat.send("Who art thou?")
        #expect(first.promptTokens == prompt.count && first.droppedTurns == 0)
        #expect(chat.turns == [prompt + first.result.tokens + closing])
        // The second prompt holds the first turn, then the new question.
        let second = try chat.send("Who art thou?")
        #expect(second.promptTokens == chat.turns[0].count + prompt.count)
        // Keep talking: old turns are dropped so that prompt + reply room always fits.
        var dropped = 0
        for _ in 0..<8 {
            let reply = try chat.send("Who art thou?")
            dropped += reply.droppedTurns
            #expect(reply.promptTokens + chat.replyReserve <= 128)
        }
        #expect(dropped > 0)
        chat.reset()
        #expect(chat.turns.isEmpty)
        // A message that cannot fit at all is refused with a message; the session goes on.
        #expect(throws: GenerationError.self) { try chat.send(Fixtures.text) }
    }

    @Test func commandsParse() throws {
        #expect(try ChatCommand.parse("  ") == nil)
        #expect(try ChatCommand.parse("hello there") == .message("hello there"))
        #expect(try ChatCommand.parse("/reset") == .reset)
        #expect(try ChatCommand.parse("/temperature 0.7") == .temperature(0.7))
        #expect(try ChatCommand.parse("/top-k off") == .topK(nil))
        #expect(try ChatCommand.parse("/top-k 5") == .topK(5))
        #expect(try ChatCommand.parse("/quit") == .quit)
        #expect(throws: GenerationError.self) { try ChatCommand.parse("/temperature warm") }
        #expect(throws: GenerationError.self) { try ChatCommand.parse("/dance") }
    }

    @Test func aSessionRunsFromPipedLines() throws {
        let chat = try session(context: 64, tokens: 5)
        var lines = [
            "Good morrow!", "/temperature -1", "/temperature 0", "/dance", "/reset", "", "What news?", "/quit",
            "never read",
        ][...]
        var output = ""
        ChatConsole(session: chat, showPrompt: false).run(readLine: { lines.popFirst() }, write: { output += $0 })
        #expect(lines == ["never read"])
        #expect(output.contains("error: temperature -1.0 is negative"))
        #expect(output.contains("error: unknown command /dance"))
        #expect(output.contains("(conversation cleared)"))
        #expect(output.components(separatedBy: " tokens/s").count == 3)  // two replies with their speed
        #expect(chat.turns.count == 1)  // the reset dropped the first
    }
}
