package pocketlm;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A phone's limits, read from the same profile files as pocketlm's Python
 * side (python/pocketlm/device/profiles/NAME.json, carried in the jar): RAM,
 * the memory an app may hold, and the threads the runtime uses.
 */
public final class DeviceProfile {
  public final String name;
  public final String displayName;
  public final long ramBytes;
  public final long appMemoryBudget;
  public final int threads;

  private DeviceProfile(String name, String displayName, long ramBytes, long appMemoryBudget, int threads) {
    this.name = name;
    this.displayName = displayName;
    this.ramBytes = ramBytes;
    this.appMemoryBudget = appMemoryBudget;
    this.threads = threads;
  }

  /** The built-in profile of that name (pixel_8, galaxy_s24_ultra, low_end_4gb, ...). */
  public static DeviceProfile load(String name) {
    if (name == null || !name.matches("[A-Za-z0-9_\\-]+")) {
      throw new IllegalArgumentException("device profile name must be letters, digits, '_' or '-', got " + name);
    }
    String text;
    try (InputStream in = DeviceProfile.class.getResourceAsStream("/pocketlm/profiles/" + name + ".json")) {
      if (in == null) {
        throw new IllegalArgumentException("no device profile named '" + name + "' (the jar carries those of "
            + "python/pocketlm/device/profiles)");
      }
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      byte[] buf = new byte[8192];
      for (int n; (n = in.read(buf)) > 0; ) out.write(buf, 0, n);
      text = new String(out.toByteArray(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new IllegalStateException("cannot read device profile " + name + ": " + e.getMessage(), e);
    }
    return new DeviceProfile(name, string(text, "display_name", name), number(text, "ram_bytes", name),
        number(text, "app_memory_budget", name), (int) number(text, "threads", name));
  }

  private static long number(String json, String key, String name) {
    Matcher m = Pattern.compile("\"" + key + "\"\\s*:\\s*(\\d+)").matcher(json);
    if (!m.find()) throw new IllegalStateException("device profile " + name + " has no " + key);
    return Long.parseLong(m.group(1));
  }

  private static String string(String json, String key, String name) {
    Matcher m = Pattern.compile("\"" + key + "\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"").matcher(json);
    if (!m.find()) throw new IllegalStateException("device profile " + name + " has no " + key);
    return m.group(1).replace("\\\"", "\"").replace("\\\\", "\\");
  }

  /** Bytes as pocketlm's Python side prints them: "1.23 GB" from 1 GiB up, else "456 MB". */
  public static String format(long n) {
    java.math.BigDecimal v = new java.math.BigDecimal(n); // exact, rounded half-even as Python's format() rounds
    return n >= (1L << 30)
        ? v.divide(new java.math.BigDecimal(1L << 30)).setScale(2, java.math.RoundingMode.HALF_EVEN) + " GB"
        : v.divide(new java.math.BigDecimal(1L << 20)).setScale(0, java.math.RoundingMode.HALF_EVEN) + " MB";
  }

  @Override
  public String toString() {
    return "DeviceProfile(" + name + ")";
  }
}
