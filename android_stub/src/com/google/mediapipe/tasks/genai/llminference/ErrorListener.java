package com.google.mediapipe.tasks.genai.llminference;

/** Receives the error that ended an asynchronous generation. */
public interface ErrorListener {
  void onError(RuntimeException e);
}
