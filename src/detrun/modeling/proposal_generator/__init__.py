"""Proposal generators: anchors, the RPN head and the Region Proposal Network."""
from .anchor_generator import DefaultAnchorGenerator
from .base import ProposalGenerator
from .rpn import RPN
from .rpn_head import StandardRPNHead

__all__ = ["DefaultAnchorGenerator", "ProposalGenerator", "RPN", "StandardRPNHead"]
