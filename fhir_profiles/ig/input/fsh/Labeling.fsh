// Transcribed by the Verity project from HL7/aitransparency-ig input/fsh/Labeling.fsh
// at commit 805d2a78ab410e1afdc0fde85370510abefe58d1 (IG version 1.0.0-current). Definitions only:
// examples and history Provenance instances are left out; rules are unchanged.

ValueSet: ProvenanceVS
Title: "Recommended provenance codes"
Description:  "Subset from HL7, plus those defined here. For use in .meta.security to indicate AI was used in some way."
* ^experimental = false
* $ObsValue#AIAST "Artificial Intelligence asserted"



//========Example of Resource Level labeling ===
