// Compiled in one module with android_stub/kotlin (so it sees its internal parts): the tool-call
// parsers, the stream that holds a call back, a @Tool set's description and its run with the call's
// arguments, and the JSON writer, each printed for test_litertlm_jvm.py to hold against Python's.
// Records "KEY value" ending with \u001e.
package com.google.ai.edge.litertlm

class WeatherTools : ToolSet {
  @Tool(description = "Get the current weather for a city")
  fun getCurrentWeather(
    @ToolParam(description = "The city name") city: String,
    @ToolParam(description = "Optional country code") country: String? = null,
    @ToolParam(description = "Days ahead") days: Int = 1,
    @ToolParam(description = "Hours") hours: List<Double> = listOf()
  ): Map<String, Any?> = mapOf("city" to city, "country" to country, "days" to days, "hours" to hours.sum())

  @Tool(description = "Always fails")
  fun broken(@ToolParam(description = "x") x: Boolean): String = throw IllegalStateException("the service is down $x")
}

fun rec(key: String, value: Any?) {
  print("$key $value\u001e")
}

fun main(args: Array<String>) {
  val calls = mapOf(
    "qwen" to "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>",
    "phi4" to "<|tool_call|>[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]<|/tool_call|>",
    "gemma3" to "```tool_code\nf(a=1, b='x', c=[True, None])\n```",
    "llama3" to "{\"name\": \"f\", \"parameters\": {\"a\": 1}}")
  for ((family, call) in calls) {
    val text = if (family == "llama3") call else "Let me look <that> up. $call done"
    val (rest, found) = ToolCalls.parse(text, family)
    rec("PARSE_$family", Json.write(listOf(rest, found.map { mapOf("name" to it.name, "arguments" to it.arguments) })))
    val got = StringBuilder()
    val stream = ToolCallStream(family) { got.append(it) }
    for (c in text) stream.feed(c.toString())
    val before = got.toString()
    stream.finish(text, found)
    rec("STREAM_$family", Json.write(listOf(before, got.toString())))
    val broken = text.replace("\"a\": 1}", "\"a\": 1").replace("f(a=1", "f(a=1(")
    rec("BROKEN_$family", ToolCalls.parse(broken, family).second.size)
  }
  val tools = tool(WeatherTools()).tools()
  rec("DESCRIPTIONS", Json.write(tools.map { it.description }))
  val weather = tools.first { it.name == "getCurrentWeather" }
  rec("RUN", Json.write(weather.run(mapOf("city" to "Paris", "hours" to listOf(1L, 2.5)))))
  rec("RUN_BAD", try {
    weather.run(mapOf("city" to 3L))
  } catch (e: IllegalArgumentException) {
    e.message
  })
  val byName = tools.associateBy { it.name }
  val answered = ToolSetTools.respond(byName, listOf(ToolCall("getCurrentWeather", mapOf("city" to "Oslo")),
    ToolCall("broken", mapOf("x" to true)), ToolCall("nowhere", mapOf())))
  rec("RESPONSES", Json.write(answered.map { listOf(it.name, it.response) }))
  rec("JSON", Json.write(mapOf("s" to "caf\u00e9 \"q\"\n", "n" to listOf(1, 2.0, 2.5, true, null))))
  rec("PARSED", Json.write(Json.parse("{\"a\": [1, -2.5e1, \"\\u00e9\\n\", false, null], \"b\": {}}")))
}
