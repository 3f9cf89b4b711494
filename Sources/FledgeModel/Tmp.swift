public enum FledgeModelPlaceholderRemoveMe {}
