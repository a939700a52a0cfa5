package com.google.mediapipe.tasks.genai.llminference;

/**
 * Receives a response as it is generated: each new piece of text, in order,
 * and a last call with {@code done} true. A Java interface, so a Kotlin
 * lambda {@code { partial, done -> ... }} converts to it.
 */
public interface ProgressListener<ResultT> {
  void run(ResultT partialResult, boolean done);
}
