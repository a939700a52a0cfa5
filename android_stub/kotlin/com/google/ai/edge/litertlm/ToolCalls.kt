package com.google.ai.edge.litertlm

/*
 * Tool calls read back from a response in each model family's format, as pocketlm's Python
 * litert_lm reads them (python/pocketlm/litertlm/_chat.py): Qwen <tool_call>{json}</tool_call>,
 * Phi-4 <|tool_call|>[json]<|/tool_call|>, Gemma 3 ```tool_code blocks of Python calls by keyword,
 * Llama 3.x a JSON object {"name", "parameters"} (after <|python_tag|> or as the whole response).
 * A call that is malformed stays text. The family comes from libpocketlm's chat-template family.
 */
internal object ToolCalls {
  /** The tool-call format of libpocketlm's chat-template family, or null. */
  fun family(templateFamily: String?): String? = when (templateFamily) {
    "qwen2", "qwen3" -> "qwen"
    "phi4-mini" -> "phi4"
    "llama3" -> "llama3"
    "gemma", "gemma3" -> "gemma3"
    else -> null
  }

  val OPENINGS = mapOf("qwen" to "<tool_call>", "phi4" to "<|tool_call|>", "gemma3" to "```tool_code",
    "llama3" to "<|python_tag|>")

  private val PATTERNS = mapOf(
    "qwen" to Regex("<tool_call>\\s*(.*?)\\s*</tool_call>", RegexOption.DOT_MATCHES_ALL),
    "phi4" to Regex("<\\|tool_call\\|>\\s*(.*?)\\s*<\\|/tool_call\\|>", RegexOption.DOT_MATCHES_ALL),
    "gemma3" to Regex("```tool_code\\s*\\n(.*?)\\n\\s*```", RegexOption.DOT_MATCHES_ALL))

  private fun call(name: Any?, args: Any?): ToolCall {
    require(name is String && args is Map<*, *>) { "a tool call needs a name and an object of arguments" }
    @Suppress("UNCHECKED_CAST")
    return ToolCall(name, args as Map<String, Any?>)
  }

  private fun jsonCalls(text: String): List<ToolCall> {
    val data = Json.parse(text)
    val items = if (data is List<*>) data else listOf(data)
    return items.map {
      require(it is Map<*, *>) { "a tool call is a JSON object" }
      call(it["name"], it["arguments"] ?: it["parameters"] ?: emptyMap<String, Any?>())
    }
  }

  /** Gemma 3's tool_code: one call a line, name(key=literal, ...), literals as Python writes them. */
  private fun pythonCalls(code: String): List<ToolCall> {
    val out = ArrayList<ToolCall>()
    for (line in code.trim().lines().map { it.trim() }.filter { it.isNotEmpty() }) {
      val m = Regex("([A-Za-z_][A-Za-z0-9_]*)\\((.*)\\)").matchEntire(line)
        ?: throw IllegalArgumentException("a tool_code block holds function calls, got $line")
      val args = LinkedHashMap<String, Any?>()
      val body = m.groupValues[2].trim()
      if (body.isNotEmpty()) {
        for (part in splitTop(body)) {
          val eq = part.indexOf('=')
          require(eq > 0) { "tool call ${m.groupValues[1]}: arguments are given by name, got $part" }
          args[part.substring(0, eq).trim()] = Json.parse(pythonToJson(part.substring(eq + 1).trim()))
        }
      }
      out.add(call(m.groupValues[1], args))
    }
    return out
  }

  private fun splitTop(s: String): List<String> {
    val out = ArrayList<String>()
    var depth = 0
    var quote = 0.toChar()
    var start = 0
    var i = 0
    while (i < s.length) {
      val c = s[i]
      if (quote != 0.toChar()) {
        if (c == '\\') i++ else if (c == quote) quote = 0.toChar()
      } else when (c) {
        '"', '\'' -> quote = c
        '[', '{', '(' -> depth++
        ']', '}', ')' -> depth--
        ',' -> if (depth == 0) { out.add(s.substring(start, i)); start = i + 1 }
      }
      i++
    }
    out.add(s.substring(start))
    return out
  }

  private fun pythonToJson(v: String): String {
    val sb = StringBuilder()
    var i = 0
    while (i < v.length) {
      val c = v[i]
      if (c == '\'' || c == '"') {
        val end = StringBuilder()
        i++
        while (i < v.length && v[i] != c) {
          if (v[i] == '\\' && i + 1 < v.length) { end.append(v[i]).append(v[i + 1]); i += 2; continue }
          if (v[i] == '"') end.append("\\\"") else end.append(v[i])
          i++
        }
        require(i < v.length) { "unterminated string in $v" }
        sb.append('"').append(end).append('"')
        i++
        continue
      }
      val word = Regex("True|False|None").find(v, i)
      if (word != null && word.range.first == i) {
        sb.append(mapOf("True" to "true", "False" to "false", "None" to "null")[word.value])
        i = word.range.last + 1
        continue
      }
      sb.append(if (c == '(') '[' else if (c == ')') ']' else c)
      i++
    }
    return sb.toString()
  }

  /** (the text outside tool calls, the calls) of a response in the family's format. */
  fun parse(text: String, family: String?): Pair<String, List<ToolCall>> {
    if (family == null) return Pair(text, listOf())
    if (family == "llama3") {
      val tag = text.indexOf("<|python_tag|>")
      val body = if (tag >= 0) text.substring(tag + "<|python_tag|>".length) else text
      val stripped = body.trim()
      if (stripped.startsWith("{") || stripped.startsWith("[")) {
        try {
          val calls = jsonCalls(stripped)
          if (calls.all { it.name.isNotEmpty() }) {
            return Pair(text.substring(0, text.length - body.length).replace("<|python_tag|>", ""), calls)
          }
        } catch (e: IllegalArgumentException) {
        }
      }
      return Pair(text, listOf())
    }
    val calls = ArrayList<ToolCall>()
    val rest = StringBuilder()
    var end = 0
    for (m in PATTERNS.getValue(family).findAll(text)) {
      val found = try {
        if (family == "gemma3") pythonCalls(m.groupValues[1]) else jsonCalls(m.groupValues[1])
      } catch (e: IllegalArgumentException) {
        continue
      }
      calls.addAll(found)
      rest.append(text, end, m.range.first)
      end = m.range.last + 1
    }
    rest.append(text, end, text.length)
    return Pair(if (calls.isEmpty()) text else rest.toString(), calls)
  }
}

/**
 * A turn's text as it streams when tools are set, as LiteRT-LM streams it: passed on as it comes;
 * from where a tool call may begin (the family's opening, or a tail that could still become one)
 * held until the turn ends, then given as text if no call parsed from it.
 */
internal class ToolCallStream(private val family: String?, private val emit: (String) -> Unit) {
  private val opening = ToolCalls.OPENINGS[family ?: ""] ?: ""
  private val sent = StringBuilder()
  private var held = ""
  private var holding = false

  fun feed(piece: String) {
    if (opening.length == 0) {
      emit(piece)
      sent.append(piece)
      return
    }
    held += piece
    if (!holding) {
      val start = sent.toString() + held
      if (family == "llama3" && (start.trimStart().startsWith("{") || start.trimStart().startsWith("["))) {
        holding = true
      } else if (held.contains(opening)) {
        holding = true
      } else if (family == "llama3" && start.isBlank()) {
        return
      }
    }
    if (holding) return
    var keep = 0
    for (n in minOf(held.length, opening.length - 1) downTo 1) {
      if (opening.startsWith(held.substring(held.length - n))) {
        keep = n
        break
      }
    }
    val out = held.substring(0, held.length - keep)
    held = held.substring(held.length - keep)
    if (out.isNotEmpty()) {
      emit(out)
      sent.append(out)
    }
  }

  fun finish(answer: String, calls: List<ToolCall>) {
    if (held.length == 0) return
    val tail = if (calls.isNotEmpty()) {
      val rest = ToolCalls.parse(answer, family).first
      if (rest.startsWith(sent.toString())) rest.substring(sent.length) else ""
    } else held
    held = ""
    if (tail.isNotEmpty()) {
      emit(tail)
      sent.append(tail)
    }
  }
}
