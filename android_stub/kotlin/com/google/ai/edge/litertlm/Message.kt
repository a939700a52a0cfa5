package com.google.ai.edge.litertlm

/*
 * LiteRT-LM's messages: a Role, Contents (a list of Content parts) and the tool calls of a model's
 * message. pocketlm runs text models only: image and audio parts are refused when sent.
 */

enum class Role(val value: String) {
  SYSTEM("system"),
  USER("user"),
  MODEL("model"),
  TOOL("tool")
}

/** One part of a message. */
sealed class Content {
  data class Text(val text: String) : Content()

  class ImageBytes(val bytes: ByteArray) : Content()

  data class ImageFile(val absolutePath: String) : Content()

  class AudioBytes(val bytes: ByteArray) : Content()

  data class AudioFile(val absolutePath: String) : Content()

  /** A tool's result for the model: response is turned into JSON (Map: object, List: array). */
  data class ToolResponse(val name: String, val response: Any?) : Content()
}

/** The parts of a message, in order; its text is the Text parts joined. */
class Contents private constructor(val contents: List<Content>) {
  override fun toString(): String = contents.filterIsInstance<Content.Text>().joinToString("") { it.text }

  override fun equals(other: Any?): Boolean = other is Contents && other.contents == contents

  override fun hashCode(): Int = contents.hashCode()

  companion object {
    @JvmStatic fun of(text: String): Contents = Contents(listOf(Content.Text(text)))

    @JvmStatic fun of(vararg contents: Content): Contents = Contents(contents.toList())

    @JvmStatic fun of(contents: List<Content>): Contents = Contents(contents.toList())

    @JvmStatic fun empty(): Contents = Contents(listOf())
  }
}

/** A call the model asked for: the tool's name and its arguments. */
data class ToolCall(val name: String, val arguments: Map<String, Any?>)

/** A message of the conversation; toString() is its text. */
class Message @JvmOverloads constructor(
  val role: Role,
  val contents: Contents = Contents.empty(),
  val toolCalls: List<ToolCall> = listOf(),
  val channels: Map<String, String> = emptyMap()
) {
  override fun toString(): String = contents.toString()

  override fun equals(other: Any?): Boolean =
    other is Message && other.role == role && other.contents == contents && other.toolCalls == toolCalls

  override fun hashCode(): Int = (role.hashCode() * 31 + contents.hashCode()) * 31 + toolCalls.hashCode()

  companion object {
    @JvmStatic fun system(text: String): Message = Message(Role.SYSTEM, Contents.of(text))

    @JvmStatic fun system(contents: Contents): Message = Message(Role.SYSTEM, contents)

    @JvmStatic fun user(text: String): Message = Message(Role.USER, Contents.of(text))

    @JvmStatic fun user(contents: Contents): Message = Message(Role.USER, contents)

    @JvmStatic fun model(text: String): Message = Message(Role.MODEL, Contents.of(text))

    @JvmStatic @JvmOverloads
    fun model(contents: Contents = Contents.empty(), toolCalls: List<ToolCall> = listOf()): Message =
      Message(Role.MODEL, contents, toolCalls)

    @JvmStatic fun tool(contents: Contents): Message = Message(Role.TOOL, contents)
  }
}

/** Receives a sendMessageAsync's response: its pieces in order, then onDone, or onError. */
interface MessageCallback {
  fun onMessage(message: Message)

  fun onDone()

  fun onError(throwable: Throwable)
}

/** An error of the native engine, with libpocketlm's message. */
class LiteRtLmJniException(message: String, cause: Throwable? = null) : RuntimeException(message, cause)
