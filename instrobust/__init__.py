"""instrobust: how much does an instruction-tuned LM's accuracy depend on the wording of its instruction?"""
from instrobust.bank import Instruction, InstructionBank, render

__all__ = ["Instruction", "InstructionBank", "render"]
__version__ = "0.1.0"
