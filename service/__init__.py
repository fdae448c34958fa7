"""Verity: FHIR-integrated verification of dispensed pills and imaging studies."""

__version__ = "0.1.0"
