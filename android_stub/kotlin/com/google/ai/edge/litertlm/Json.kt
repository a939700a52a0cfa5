package com.google.ai.edge.litertlm

/*
 * The JSON of tool calls, tool responses and tool descriptions, written as Python's json.dumps writes
 * it (", " and ": " separators, non-ASCII characters as they are: the tojson of LiteRT-LM's templates
 * as pocketlm renders them), and read into Map / List / String / Long / Double / Boolean / null.
 */
internal object Json {
  fun write(value: Any?): String = StringBuilder().also { write(it, value) }.toString()

  private fun write(sb: StringBuilder, v: Any?) {
    when (v) {
      null -> sb.append("null")
      is String -> string(sb, v)
      is Boolean -> sb.append(if (v) "true" else "false")
      is Int, is Long, is Short, is Byte -> sb.append(v.toString())
      is Float -> number(sb, v.toDouble())
      is Double -> number(sb, v)
      is Number -> sb.append(v.toString())
      is Map<*, *> -> {
        sb.append('{')
        var first = true
        for ((k, x) in v) {
          if (!first) sb.append(", ")
          first = false
          string(sb, k.toString())
          sb.append(": ")
          write(sb, x)
        }
        sb.append('}')
      }
      is Iterable<*> -> {
        sb.append('[')
        var first = true
        for (x in v) {
          if (!first) sb.append(", ")
          first = false
          write(sb, x)
        }
        sb.append(']')
      }
      is Array<*> -> write(sb, v.asList())
      else -> string(sb, v.toString())
    }
  }

  private fun number(sb: StringBuilder, d: Double) {
    require(!d.isNaN() && !d.isInfinite()) { "$d has no JSON form" }
    // Python's repr of a float: integral values keep ".0"
    sb.append(if (d == Math.rint(d) && Math.abs(d) < 1e16) String.format("%.1f", d) else d.toString())
  }

  private fun string(sb: StringBuilder, s: String) {
    sb.append('"')
    for (c in s) {
      when (c) {
        '"' -> sb.append("\\\"")
        '\\' -> sb.append("\\\\")
        '\n' -> sb.append("\\n")
        '\r' -> sb.append("\\r")
        '\t' -> sb.append("\\t")
        '\b' -> sb.append("\\b")
        '\u000c' -> sb.append("\\f")
        else -> if (c < ' ') sb.append(String.format("\\u%04x", c.toInt())) else sb.append(c)
      }
    }
    sb.append('"')
  }

  /** The value of text, which must be one JSON value; IllegalArgumentException naming the offset. */
  fun parse(text: String): Any? {
    val p = Parser(text)
    p.ws()
    val v = p.value()
    p.ws()
    if (p.i != text.length) p.fail("text after the JSON value")
    return v
  }

  private class Parser(val s: String) {
    var i = 0

    fun fail(what: String): Nothing = throw IllegalArgumentException("bad JSON at offset $i: $what")

    fun ws() {
      while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
    }

    fun value(): Any? {
      if (i >= s.length) fail("unexpected end")
      return when (s[i]) {
        '{' -> obj()
        '[' -> arr()
        '"' -> str()
        't' -> lit("true", true)
        'f' -> lit("false", false)
        'n' -> lit("null", null)
        else -> num()
      }
    }

    fun lit(word: String, v: Any?): Any? {
      if (!s.startsWith(word, i)) fail("expected $word")
      i += word.length
      return v
    }

    fun obj(): Map<String, Any?> {
      val out = LinkedHashMap<String, Any?>()
      i++
      ws()
      if (i < s.length && s[i] == '}') { i++; return out }
      while (true) {
        ws()
        if (i >= s.length || s[i] != '"') fail("expected a key")
        val k = str()
        ws()
        if (i >= s.length || s[i] != ':') fail("expected ':'")
        i++
        ws()
        out[k] = value()
        ws()
        if (i < s.length && s[i] == ',') { i++; continue }
        if (i < s.length && s[i] == '}') { i++; return out }
        fail("expected ',' or '}'")
      }
    }

    fun arr(): List<Any?> {
      val out = ArrayList<Any?>()
      i++
      ws()
      if (i < s.length && s[i] == ']') { i++; return out }
      while (true) {
        ws()
        out.add(value())
        ws()
        if (i < s.length && s[i] == ',') { i++; continue }
        if (i < s.length && s[i] == ']') { i++; return out }
        fail("expected ',' or ']'")
      }
    }

    fun str(): String {
      val sb = StringBuilder()
      i++
      while (true) {
        if (i >= s.length) fail("unterminated string")
        val c = s[i++]
        when {
          c == '"' -> return sb.toString()
          c == '\\' -> {
            if (i >= s.length) fail("unterminated escape")
            when (val e = s[i++]) {
              '"', '\\', '/' -> sb.append(e)
              'n' -> sb.append('\n')
              'r' -> sb.append('\r')
              't' -> sb.append('\t')
              'b' -> sb.append('\b')
              'f' -> sb.append('\u000c')
              'u' -> {
                if (i + 4 > s.length) fail("short \\u escape")
                sb.append(s.substring(i, i + 4).toIntOrNull(16)?.toChar() ?: fail("bad \\u escape"))
                i += 4
              }
              else -> fail("bad escape \\$e")
            }
          }
          c < ' ' -> fail("control character in a string")
          else -> sb.append(c)
        }
      }
    }

    fun num(): Any {
      val start = i
      if (i < s.length && s[i] == '-') i++
      while (i < s.length && (s[i].isDigit() || s[i] in ".eE+-")) i++
      val t = s.substring(start, i)
      if (t.length == 0 || t == "-") fail("unexpected character '${s.getOrNull(start)}'")
      return t.toLongOrNull() ?: t.toDoubleOrNull() ?: fail("bad number $t")
    }
  }
}
