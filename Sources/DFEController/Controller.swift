import DFEReconciler

/// The long-running controller (placeholder until the controller lands).
public enum ControllerPlaceholder {}
