"""Parametric memory: LoRA adapters of the local model, their files, validation, distillation and attachment."""
