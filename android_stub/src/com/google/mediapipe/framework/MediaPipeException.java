package com.google.mediapipe.framework;

/**
 * What MediaPipe's Android tasks throw when the native engine fails. On the
 * host JVM its message is libpocketlm's: it names the file, the setting or
 * the limit that failed.
 */
public class MediaPipeException extends RuntimeException {
  public MediaPipeException(String message) {
    super(message);
  }
}
