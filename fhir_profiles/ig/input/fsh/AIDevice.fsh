// Transcribed by the Verity project from HL7/aitransparency-ig input/fsh/AIDevice.fsh
// at commit 805d2a78ab410e1afdc0fde85370510abefe58d1 (IG version 1.0.0-current). Definitions only:
// examples and history Provenance instances are left out; rules are unchanged.

CodeSystem: AIinputsCS
Title: "Codes for AI ModelCard and Input Prompt"
Description: "This CodeSystem contains codes for the DocumentReference.type and DocumentReference.category that indicate that the DocumentReference is an Input-Prompt or one of a set of Model-Card(s)."
* ^caseSensitive = true
* ^experimental = false
* ^status = #active
* #AIModelCard "AI Model-Card" "DocumentReference containing a Model-Card describing an AI system"
* #AIInputPrompt "AI Input Prompt" "Input Prompt for AI Model"
* #AIModelCardMarkdownFormat  "Markdown Format" "Hugging Face Model-Card in Markdown format"
* #AImodelCardCHAIformat "CHAI Format" "Model-Card in CHAI format (Coalition for Health AI)"

Profile: AIModelCard
Parent: DocumentReference
Id: AI-ModelCard
Title: "AI Model-Card DocumentReference"
Description: "A DocumentReference that contains a Model-Card describing an AI system."
* type 1..1 MS
* type = AIinputsCS#AIModelCard (exactly) 
//* obeys mc-1
* category 1..* MS
* category ^slicing.discriminator.type = #value
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category contains 
  AImodelCardMD 0..1 MS and 
  AImodelCardCHAI 0..1 MS
* category[AImodelCardMD] = AIinputsCS#AIModelCardMarkdownFormat  "Markdown Format"
* category[AImodelCardCHAI] = AIinputsCS#AImodelCardCHAIformat "CHAI Format"
* content ^slicing.discriminator.type = #value
* content ^slicing.discriminator.path = "attachment.contentType"
* content ^slicing.rules = #open
* content contains 
  MarkdownFormat 0..1 and 
  CHAIformat 0..1
* content[MarkdownFormat].attachment.contentType 1..1 MS
* content[MarkdownFormat].attachment.contentType = #text/markdown (exactly)
* content[MarkdownFormat].attachment.data 0..1 MS
  * ^comment = "The model-card in Markdown base64-encoded text format"
* content[MarkdownFormat].attachment.url 0..1 MS
  * ^comment = "The model-card in Markdown as a URL"
* content[CHAIformat].attachment.contentType 1..1 MS
* content[CHAIformat].attachment.contentType = #application/xml (exactly)
* content[CHAIformat].attachment.data 0..1 MS
  * ^comment = "The model-card in CHAI format base64-encoded"
* content[CHAIformat].attachment.url 0..1 MS
  * ^comment = "The model-card in CHAI as a URL"
* identifier 0..* MS
* description 0..1 MS 
  * ^comment = "The model-card in markdown format that is not base64-encoded for human readability"

Profile: AIInputPrompt
Parent: DocumentReference
Id: AI-InputPrompt
Title: "AI Input Prompt DocumentReference"
Description: "A DocumentReference that contains an input prompt for an AI system. The Input Prompt is the information that is input into the AI system to produce an output. This DocumentReference can be used to capture the Input Prompt that was used with a given AI system, and can be referenced from the Provenance that tracks the usage of the AI system. The AI Prompt is typically encoded in markdown, but does not need to be. This DocumentReference would be referenced in the Provenance as the input to an Activity that represents the usage of the AI system, and the AIDevice would be referenced as the agent in that Provenance. This allows for traceability from the output back to the Input Prompt and the AI system that produced it."
* type 1..1 MS
* type.coding ^slicing.discriminator.type = #value
* type.coding ^slicing.discriminator.path = "$this"
* type.coding ^slicing.rules = #closed
* type.coding contains AIInputPrompt 1..* MS
* type.coding[AIInputPrompt] = AIinputsCS#AIInputPrompt (exactly)

* content ^slicing.discriminator.type = #value
* content ^slicing.discriminator.path = "attachment.contentType"
* content ^slicing.rules = #open
* content contains 
  MarkdownFormat 0..1
* content[MarkdownFormat].attachment.contentType 1..1 MS
* content[MarkdownFormat].attachment.contentType = #text/markdown (exactly)
* content[MarkdownFormat].attachment.data 0..1 MS
  * ^comment = "The input prompt in Markdown base64-encoded text format"
* content[MarkdownFormat].attachment.url 0..1 MS
  * ^comment = "The input prompt in Markdown as a URL"
* identifier 0..* MS
* description 0..1 MS 
  * ^comment = "The input prompt in markdown format that is not base64-encoded for human readability"

Extension: ModelCardDescription
Id: aitransparency.modelCardDescription
Title: "Model-Card"
Description: "When the Device is described by a Model-Card, this extension can be used to reference the Model-Card."
* ^context[+].type = #element
* ^context[=].expression = "Device"
* value[x] only Reference(AIModelCard) 
* valueReference 1..1

Profile: AIDevice 
Parent: Device
Id: AI-Device
Title: "AI Device"
Description: """
A Device that represents an AI system, such as a Large Language Model (LLM) or other AI model. This profile requires Device.type to be `Artificial-Intelligence`. The extension AIKind is used to specify the more specific kind(s) of AI technology and techniques employed by the AI system. The extension ModelCardDescription is used to reference a Model-Card that is always used with the AI system.
"""
* identifier MS
  * ^comment = "Identifier for the AI system, such as a client ID from an EHR system"
* type 1..1
* type = AIdeviceTypeCS#Artificial-Intelligence (exactly)
* extension contains AIKind named aiKind 0..*
* extension contains ModelCardDescription named modelCardDescription 0..*
  * ^comment = "Reference to a Model-Card that is always used"
* manufacturer MS
* manufactureDate MS
* deviceName MS
* modelNumber MS
* version MS
* owner MS
* contact MS
* url MS
* safety MS

Extension: AIKind
Id: aitransparency.AIKind
Title: "Specific kind of AI technology"
Description: "Expresses the more specific kind(s) of AI technology and techniques."
* ^context[+].type = #element
* ^context[=].expression = "Device"
* value[x] only CodeableConcept
* valueCodeableConcept 1..1
* valueCodeableConcept from AIdeviceTypeVS (preferred)

Instance: AIdeviceTypeVS
InstanceOf: ValueSet
Title: "Recommended Device type codes for Artificial Intelligence"
Description:  "Subset from HL7, plus those defined here"
Usage: #definition
* name = "AIdeviceTypeVS"
* status = #active
* experimental = false
* version = "1.0.0"
* date = "2026-08-05"
* compose.include.system = Canonical(AIdeviceTypeCS)
* compose.exclude.system = Canonical(AIdeviceTypeCS)
* compose.exclude.concept.code = #Artificial-Intelligence

CodeSystem: AIdeviceTypeCS
Title: "Device type for Artificial Intelligence"
Description: "This CodeSystem contains codes for the Device.type that indicate that the Device is an AI. The codes here were created by AI."
* ^meta.security = $ObsValue#AIAST "Artificial Intelligence asserted"
* ^caseSensitive = true
* ^experimental = false
* ^status = #active
* ^hierarchyMeaning = #grouped-by
* ^property[0].code = #abstract
* ^property[0].uri = "http://hl7.org/fhir/concept-properties#notSelectable"
* ^property[0].type = #boolean
* #Artificial-Intelligence "All kinds of Artificial Intelligence" "Any type of Artificial Intelligence system, undifferentiated."
  * #AI-By-Model "Classification by Technical Model" "This category classifies AI systems based on the underlying technical models they employ."
  * #AI-By-Model ^property.code = #abstract
  * #AI-By-Model ^property.valueBoolean = true
    * #Rule-Based-Systems "Rule-Based Systems" "Systems that apply explicitly authored rules, logic, knowledge representations, or inference procedures to input data."
    * #Machine-Learning-Models "Machine Learning Models" "They include supervised learning models (e.g., Support Vector Machines (SVM), Random Forests (RF)), which can be used for disease classification and risk prediction; unsupervised learning models (e.g., K-means clustering), which can discover hidden characteristics of patient subgroups; and reinforcement learning models, which can be applied in dynamic treatment plan management."
      * #Deep-Learning-Models "Deep Learning Models" "Examples include Convolutional Neural Networks (CNNs), which perform excellently in medical image analysis; Recurrent Neural Networks (RNNs) and their variant LSTMs, which are suitable for processing time-series physiological signal data; Generative Adversarial Networks (GANs), which can be used to synthesize training data and alleviate the scarcity of medical data; and Transformer models, which are widely used in multiple tasks such as medical imaging, text analysis, and physiological signal prediction."
        * #Foundation-Models "Foundation Models" "Deep learning models trained on broad data at scale that can be adapted to a range of downstream tasks."
        * #Foundation-Models ^property.code = #abstract
        * #Foundation-Models ^property.valueBoolean = true
          * #Large-Language-Models "Large Language Models" "These models, such as GPT-4 and PaLM, are trained on massive text datasets and can perform various natural language processing tasks, including medical text understanding, generation, and question answering."
          * #Vision-Foundation-Models "Vision Foundation Models" "Foundation models trained primarily to process and represent visual data for adaptation to vision tasks."
          * #Vision-Language-Models "Vision-Language Models" "Foundation models that jointly process visual and language data."
    * #Hybrid-Models "Hybrid Models" "These models combine multiple AI techniques to leverage their respective strengths. For instance, combining CNNs and RNNs can effectively process medical image sequences; integrating machine learning and deep learning models can enhance disease prediction accuracy; and combining rule-based systems with machine learning can improve interpretability and reliability in clinical decision support."
//  * #Other-AI-Models "Other AI Models" "This category includes other AI models not covered above, such as graph neural networks (GNNs) for modeling complex relationships in medical data, and evolutionary algorithms for optimizing treatment plans."
  * #AI-By-Behavior "Classification by Output Behavior" "Groups AI systems by whether identical inputs and execution conditions are expected to produce identical outputs."
  * #AI-By-Behavior ^property.code = #abstract
  * #AI-By-Behavior ^property.valueBoolean = true
    * #Deterministic-AI "Deterministic AI" "An AI system that produces the same output for the same input when its model, configuration, state, and execution environment are unchanged."
    * #Non-Deterministic-AI "Non-deterministic AI" "An AI system whose output may vary for the same input and execution conditions, for example because it uses probabilistic sampling or stochastic processing."
  * #AI-By-Scenario "Classification by Application Scenario" "This category classifies AI systems based on their application scenarios in the medical field."
  * #AI-By-Scenario ^property.code = #abstract
  * #AI-By-Scenario ^property.valueBoolean = true
    * #Intelligent-Diagnosis-and-Treatment "Intelligent Diagnosis and Treatment" "By analyzing massive volumes of medical data, these AI systems assist doctors in making more accurate diagnostic and treatment decisions."
    * #Medical-Image-Analysis "Medical Image Analysis" "Leveraging deep learning technologies, these AI tools automatically identify lesion areas in medical images."
    * #Personalized-Treatment "Personalized Treatment" "These AI systems create precise patient profiles to formulate personalized treatment plans."
    * #Clinical-Monitoring-and-Early-Warning "Clinical Monitoring and Early Warning" "Monitors longitudinal or real-time patient data to identify deterioration, adverse events, or other conditions requiring attention."
    * #Clinical-Documentation-and-Workflow "Clinical Documentation and Workflow" "Creates, summarizes, extracts, codes, routes, or quality-checks clinical and administrative information to support healthcare workflows."
    * #Drug-Discovery-and-Development "Drug Discovery and Development" "AI in this category accelerates the screening of candidate drugs and optimizes the design of clinical trials."
    * #Medical-Quality-Control "Medical Quality Control" "These AI tools are used to generate standardized medical document templates and detect defects in medical documents and images."
    * #Patient-Services "Patient Services" "AI systems here provide patients with services such as intelligent medical guidance, symptom self-assessment, and medical consultation."
    * #Population-Health-and-Operations "Population Health and Healthcare Operations" "Supports population stratification, public health, resource planning, scheduling, logistics, or other healthcare operational activities."
  * #AI-By-DataType "Classification by Processed Data Type" "This category classifies AI systems based on the types of medical data they primarily process."
  * #AI-By-DataType ^property.code = #abstract
  * #AI-By-DataType ^property.valueBoolean = true
    * #AI-for-Medical-Imaging-Data "AI for Medical Imaging Data" "It mainly processes medical imaging data such as X-rays, MRIs, and CT scans."
    * #AI-for-Physiological-Signal-Data "AI for Physiological Signal Data" "This type of AI deals with physiological signal data like electrocardiograms (ECG) and electroencephalograms (EEG)."
    * #AI-for-Medical-Text-Data "AI for Medical Text Data" "It processes text data such as electronic health records (EHRs) and medical abstracts."
    * #AI-for-Structured-Clinical-Data "Structured Clinical Data" "Processes coded, tabular, or relational health data such as diagnoses, medications, laboratory results, observations, claims, or FHIR resources."
    * #AI-for-Genomic-and-Omics-Data "Genomic and Omics Data" "Processes genomic, transcriptomic, proteomic, metabolomic, or related molecular data."
    * #AI-for-Audio-Data "Audio Data" "Processes speech, heart sounds, respiratory sounds, or other clinically relevant audio."
    * #AI-for-Video-Data "Video Data" "Processes temporal image sequences such as endoscopy, ultrasound cine loops, gait recordings, or procedure video."
    * #AI-for-Multimodal-Data "Multimodal Data" "Jointly processes two or more data modalities, such as images and text or physiological signals and structured clinical data."
