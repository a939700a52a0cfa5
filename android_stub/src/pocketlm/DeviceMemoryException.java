package pocketlm;

import com.google.mediapipe.framework.MediaPipeException;

/** A model or a session does not fit the phone's app memory budget (pocketlm's DeviceMemoryError). */
public class DeviceMemoryException extends MediaPipeException {
  public DeviceMemoryException(String message) {
    super(message);
  }
}
