package com.google.ai.edge.litertlm

import kotlin.reflect.KClass
import kotlin.reflect.KFunction
import kotlin.reflect.KParameter
import kotlin.reflect.KType
import kotlin.reflect.full.declaredMemberFunctions
import kotlin.reflect.full.findAnnotation
import kotlin.reflect.full.instanceParameter
import kotlin.reflect.jvm.isAccessible

/*
 * LiteRT-LM's tools: a ToolSet's @Tool functions (their @ToolParam parameters: String, Int, Long,
 * Boolean, Float, Double, or a List of these; nullable, or optional with a default), or an OpenApiTool
 * with its own JSON description. Each becomes an OpenAPI-style description
 * {"name", "description", "parameters"} and is run with the arguments of the model's call.
 */

@Target(AnnotationTarget.FUNCTION)
@Retention(AnnotationRetention.RUNTIME)
annotation class Tool(val description: String)

@Target(AnnotationTarget.VALUE_PARAMETER)
@Retention(AnnotationRetention.RUNTIME)
annotation class ToolParam(val description: String)

/** A class whose @Tool functions are tools. */
interface ToolSet

/** A tool described by an OpenAPI JSON string, run with the call's arguments as a JSON string. */
interface OpenApiTool {
  fun getToolDescriptionJsonString(): String

  fun execute(paramsJsonString: String): String
}

/** Tools for a ConversationConfig: tool(aToolSet) or tool(anOpenApiTool). */
abstract class ToolProvider internal constructor() {
  internal abstract fun tools(): List<RunnableTool>
}

fun tool(toolSet: ToolSet): ToolProvider = object : ToolProvider() {
  override fun tools(): List<RunnableTool> = ToolSetTools.of(toolSet)
}

fun tool(openApiTool: OpenApiTool): ToolProvider = object : ToolProvider() {
  override fun tools(): List<RunnableTool> {
    val desc = try {
      Json.parse(openApiTool.getToolDescriptionJsonString()) as? Map<*, *>
    } catch (e: IllegalArgumentException) {
      throw IllegalArgumentException("the tool description of ${openApiTool.javaClass.name} is not JSON: ${e.message}")
    }
    val name = desc?.get("name") as? String
      ?: throw IllegalArgumentException("the tool description of ${openApiTool.javaClass.name} has no \"name\"")
    return listOf(object : RunnableTool(name, desc) {
      override fun run(arguments: Map<String, Any?>): Any? = Json.parse(openApiTool.execute(Json.write(arguments)))
    })
  }
}

/** A tool's name, its description, and how to run it. */
internal abstract class RunnableTool(val name: String, val description: Map<*, *>) {
  abstract fun run(arguments: Map<String, Any?>): Any?
}

internal object ToolSetTools {
  /** Each call run, as LiteRT-LM answers it: the tool's result as JSON, or "Error: ..." for a tool that
   * throws or is not there (the model is told, the conversation goes on). */
  fun respond(tools: Map<String, RunnableTool>, calls: List<ToolCall>): List<Content.ToolResponse> = calls.map { call ->
    val tool = tools[call.name]
    val result: Any? = if (tool == null) "Error: Tool ${call.name} not found" else try {
      tool.run(call.arguments)
    } catch (e: Throwable) {
      val cause = if (e is java.lang.reflect.InvocationTargetException && e.cause != null) e.cause!! else e
      "Error: ${cause.message}"
    }
    Content.ToolResponse(call.name, jsonable(result))
  }

  private fun jsonable(v: Any?): Any? = when (v) {
    null, is String, is Number, is Boolean -> v
    is Map<*, *> -> v.entries.associate { it.key.toString() to jsonable(it.value) }
    is Iterable<*> -> v.map { jsonable(it) }
    is Array<*> -> v.map { jsonable(it) }
    else -> v.toString()
  }

  fun of(set: ToolSet): List<RunnableTool> {
    val out = ArrayList<RunnableTool>()
    for (f in set::class.declaredMemberFunctions.sortedBy { it.name }) {
      val ann = f.findAnnotation<Tool>() ?: continue
      out.add(runnable(set, f, ann))
    }
    require(out.isNotEmpty()) { "${set::class.qualifiedName} has no function annotated @Tool" }
    return out
  }

  private fun schema(type: KType, where: String): MutableMap<String, Any?> {
    val cls = type.classifier as? KClass<*>
    val out = LinkedHashMap<String, Any?>()
    when (cls) {
      String::class -> out["type"] = "string"
      Int::class, Long::class, Short::class -> out["type"] = "integer"
      Boolean::class -> out["type"] = "boolean"
      Float::class, Double::class -> out["type"] = "number"
      List::class, Collection::class, Iterable::class -> {
        val item = type.arguments.firstOrNull()?.type
          ?: throw IllegalArgumentException("$where: a List parameter needs its element type")
        out["type"] = "array"
        out["items"] = schema(item, where)
      }
      else -> throw IllegalArgumentException(
        "$where: type $type is not a tool parameter type (String, Int, Long, Boolean, Float, Double or a List of them)")
    }
    if (type.isMarkedNullable) out["nullable"] = true
    return out
  }

  private fun runnable(set: ToolSet, f: KFunction<*>, ann: Tool): RunnableTool {
    val props = LinkedHashMap<String, Any?>()
    val required = ArrayList<String>()
    val params = f.parameters.filter { it.kind == KParameter.Kind.VALUE }
    for (p in params) {
      val name = p.name ?: throw IllegalArgumentException("tool ${f.name}: a parameter has no name")
      val s = schema(p.type, "tool ${f.name}, parameter $name")
      p.findAnnotation<ToolParam>()?.let { s["description"] = it.description }
      props[name] = s
      if (!p.isOptional && !p.type.isMarkedNullable) required.add(name)
    }
    val parameters = LinkedHashMap<String, Any?>()
    parameters["type"] = "object"
    parameters["properties"] = props
    if (required.isNotEmpty()) parameters["required"] = required
    val desc = LinkedHashMap<String, Any?>()
    desc["name"] = f.name
    desc["description"] = ann.description
    desc["parameters"] = parameters
    f.isAccessible = true
    return object : RunnableTool(f.name, desc) {
      override fun run(arguments: Map<String, Any?>): Any? {
        val unknown = arguments.keys - params.mapNotNull { it.name }
        require(unknown.isEmpty()) { "tool ${f.name} has no parameter ${unknown.joinToString()}" }
        val args = HashMap<KParameter, Any?>()
        args[f.instanceParameter!!] = set
        for (p in params) {
          if (!arguments.containsKey(p.name)) {
            if (p.isOptional) continue
            if (p.type.isMarkedNullable) { args[p] = null; continue }
            throw IllegalArgumentException("tool ${f.name}: the call gives no ${p.name}")
          }
          args[p] = convert(arguments[p.name], p.type, "tool ${f.name}, parameter ${p.name}")
        }
        return f.callBy(args)
      }
    }
  }

  private fun convert(v: Any?, type: KType, where: String): Any? {
    if (v == null) {
      require(type.isMarkedNullable) { "$where: null for a parameter that is not nullable" }
      return null
    }
    return when (type.classifier) {
      String::class -> v as? String ?: throw IllegalArgumentException("$where: $v is not a string")
      Int::class -> (v as? Long)?.toInt() ?: throw IllegalArgumentException("$where: $v is not an integer")
      Long::class -> v as? Long ?: throw IllegalArgumentException("$where: $v is not an integer")
      Short::class -> (v as? Long)?.toShort() ?: throw IllegalArgumentException("$where: $v is not an integer")
      Boolean::class -> v as? Boolean ?: throw IllegalArgumentException("$where: $v is not a boolean")
      Float::class -> (v as? Number)?.toFloat() ?: throw IllegalArgumentException("$where: $v is not a number")
      Double::class -> (v as? Number)?.toDouble() ?: throw IllegalArgumentException("$where: $v is not a number")
      else -> {
        val list = v as? List<*> ?: throw IllegalArgumentException("$where: $v is not an array")
        val item = type.arguments.first().type!!
        list.map { convert(it, item, where) }
      }
    }
  }
}
