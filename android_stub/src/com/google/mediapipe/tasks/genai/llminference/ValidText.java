package com.google.mediapipe.tasks.genai.llminference;

/**
 * pocketlm's check of text bound for the engine (package-private; no MediaPipe class). A Java
 * String may hold a lone UTF-16 surrogate, which has no UTF-8 form: {@code StandardCharsets.UTF_8}
 * would silently turn it into '?'. Such text is refused where it enters the API, naming the
 * argument, the char index and the code unit, as pocketlm's Python API refuses it.
 */
final class ValidText {
  private ValidText() {}

  /** text itself (null passes: the caller's own check names it); a lone surrogate throws IllegalArgumentException. */
  static String check(String what, String text) {
    if (text == null) return null;
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      if (!Character.isSurrogate(c)) continue;
      if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(text.charAt(i + 1))) {
        i++; // a pair: one character outside the BMP (an emoji)
        continue;
      }
      throw new IllegalArgumentException(String.format(
          "%s: lone surrogate U+%04X at index %d is not valid text (a broken UTF-16 string?)", what, (int) c, i));
    }
    return text;
  }
}
