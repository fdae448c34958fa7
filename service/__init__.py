"""Verity: FHIR-integrated verification of dispensed pills and imaging studies."""
