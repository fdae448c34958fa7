// Transcribed by the Verity project from HL7/aitransparency-ig input/fsh/Alias.fsh
// at commit 805d2a78ab410e1afdc0fde85370510abefe58d1 (IG version 1.0.0-current). Definitions only:
// examples and history Provenance instances are left out; rules are unchanged.

Alias: $sct = http://snomed.info/sct

Alias: $loinc = http://loinc.org

Alias: $ObsValue = http://terminology.hl7.org/CodeSystem/v3-ObservationValue

Alias: $ActCode = http://terminology.hl7.org/CodeSystem/v3-ActCode

Alias: $ActReason = http://terminology.hl7.org/CodeSystem/v3-ActReason

Alias: $v2-0074 = http://terminology.hl7.org/CodeSystem/v2-0074

Alias: $codes = http://example.org/codes

Alias: $ProvPartType = http://terminology.hl7.org/CodeSystem/provenance-participant-type
