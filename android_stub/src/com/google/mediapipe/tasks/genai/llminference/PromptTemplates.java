package com.google.mediapipe.tasks.genai.llminference;

/**
 * The text around each turn of a conversation: user, model and system
 * prefixes and suffixes, all empty unless set. A session given templates
 * wraps its turns with them instead of the model's own.
 */
public final class PromptTemplates {
  private final String userPrefix, userSuffix, modelPrefix, modelSuffix, systemPrefix, systemSuffix;

  private PromptTemplates(Builder b) {
    userPrefix = b.userPrefix;
    userSuffix = b.userSuffix;
    modelPrefix = b.modelPrefix;
    modelSuffix = b.modelSuffix;
    systemPrefix = b.systemPrefix;
    systemSuffix = b.systemSuffix;
  }

  public String userPrefix() { return userPrefix; }
  public String userSuffix() { return userSuffix; }
  public String modelPrefix() { return modelPrefix; }
  public String modelSuffix() { return modelSuffix; }
  public String systemPrefix() { return systemPrefix; }
  public String systemSuffix() { return systemSuffix; }

  public static Builder builder() {
    return new Builder();
  }

  /** Builder for {@link PromptTemplates}. */
  public static final class Builder {
    private String userPrefix = "", userSuffix = "", modelPrefix = "", modelSuffix = "";
    private String systemPrefix = "", systemSuffix = "";

    private Builder() {}

    public Builder setUserPrefix(String v) { userPrefix = nonNull(v, "userPrefix"); return this; }
    public Builder setUserSuffix(String v) { userSuffix = nonNull(v, "userSuffix"); return this; }
    public Builder setModelPrefix(String v) { modelPrefix = nonNull(v, "modelPrefix"); return this; }
    public Builder setModelSuffix(String v) { modelSuffix = nonNull(v, "modelSuffix"); return this; }
    public Builder setSystemPrefix(String v) { systemPrefix = nonNull(v, "systemPrefix"); return this; }
    public Builder setSystemSuffix(String v) { systemSuffix = nonNull(v, "systemSuffix"); return this; }

    public PromptTemplates build() {
      return new PromptTemplates(this);
    }

    private static String nonNull(String v, String what) {
      if (v == null) throw new NullPointerException(what + " is null");
      return ValidText.check("promptTemplates." + what, v);
    }
  }
}
